#!/usr/bin/env bash
# Throwaway PostgreSQL cluster + ThingSpace simulator for tests and the demo.
#
#   test/cluster.sh start WORKDIR   # writes WORKDIR/env (source it: PGHOST, PGPORT, SIM_URL, ...)
#   test/cluster.sh stop WORKDIR
#   test/cluster.sh restart-pg WORKDIR [immediate]
#
# Everything lives under WORKDIR, on free loopback ports; no other cluster is touched.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: cluster.sh start|stop|restart-pg WORKDIR}
work=${2:?usage: cluster.sh start|stop|restart-pg WORKDIR}
PG_BIN=$(pg_config --bindir)
PYTHON=${PYTHON:-/usr/bin/python3}

if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_ctl_() { as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 60 "$@"; }

start() {
  mkdir -p "$work"
  chmod 755 "$work"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$work"

  # Simulator first: its port goes into postgresql.conf.
  local lport; lport=$(free_port)
  local cb_user="ts-callback" cb_pass="cb-$RANDOM$RANDOM-secret"
  rm -f "$work/sim.port"
  "$PYTHON" "$here/sim/thingspace_sim.py" --port 0 --port-file "$work/sim.port" \
    --default-callback-url "http://127.0.0.1:$lport/" \
    --default-callback-username "$cb_user" --default-callback-password "$cb_pass" \
    --log-file "$work/sim.log" >"$work/sim.out" 2>&1 &
  echo $! >"$work/sim.pid"
  for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.1; done
  [ -s "$work/sim.port" ] || { echo "simulator did not start:" >&2; cat "$work/sim.out" >&2; exit 1; }
  local sport; sport=$(cat "$work/sim.port")

  local pgport; pgport=$(free_port)
  as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$work/initdb.log" 2>&1 \
    || { cat "$work/initdb.log" >&2; exit 1; }
  cat >>"$work/data/postgresql.conf" <<CONF
# --- thingspace_fdw test cluster ---
port = $pgport
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
shared_preload_libraries = 'thingspace_fdw'
max_connections = 40
fsync = on
log_line_prefix = '%m [%p] %q%a '
log_min_messages = info
thingspace_fdw.listen_addresses = '127.0.0.1'
thingspace_fdw.listen_port = $lport
thingspace_fdw.callback_username = '$cb_user'
thingspace_fdw.callback_password = '$cb_pass'
regress.sim_url = 'http://127.0.0.1:$sport'
regress.listener_url = 'http://127.0.0.1:$lport/'
regress.callback_username = '$cb_user'
regress.callback_password = '$cb_pass'
CONF
  pg_ctl_ start >/dev/null || { cat "$work/postgres.log" >&2; exit 1; }

  cat >"$work/env" <<ENV
export TS_WORK='$work'
export PGHOST='$work'
export PGPORT=$pgport
export PGUSER=postgres
export PGDATABASE=postgres
export SIM_URL='http://127.0.0.1:$sport'
export LISTEN_PORT=$lport
export LISTENER_URL='http://127.0.0.1:$lport/'
export CALLBACK_USERNAME='$cb_user'
export CALLBACK_PASSWORD='$cb_pass'
ENV
  chmod 644 "$work/env"
}

stop() {
  if [ -f "$work/data/postmaster.pid" ]; then
    pg_ctl_ stop -m fast >/dev/null 2>&1 || pg_ctl_ stop -m immediate >/dev/null 2>&1 || true
  fi
  if [ -f "$work/sim.pid" ]; then
    kill "$(cat "$work/sim.pid")" 2>/dev/null || true
    rm -f "$work/sim.pid"
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart-pg)
    pg_ctl_ stop -m "${3:-fast}" >/dev/null || true
    pg_ctl_ start >/dev/null ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
