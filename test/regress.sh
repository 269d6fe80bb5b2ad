#!/usr/bin/env bash
# Runs pg_regress (sql/ + expected/) against the cluster of WORKDIR (test/cluster.sh).
#   test/regress.sh WORKDIR [test ...]      default: every sql/*.sql, in name order
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: regress.sh WORKDIR [test ...]}; shift
# shellcheck disable=SC1091
. "$work/env"

out="$work/regress"
rm -rf "$out"; mkdir -p "$out"
cp -r "$repo/sql" "$repo/expected" "$out/"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$out"
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=($(cd "$repo/sql" && ls *.sql | sed 's/\.sql$//' | sort))

run=("$(pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress"
  --inputdir="$out" --outputdir="$out" --host="$PGHOST" --port="$PGPORT" --user=postgres
  --dbname=contrib_regression --load-extension=thingspace_fdw "${tests[@]}")
rc=0
if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "${run[@]}" || rc=$?; else "${run[@]}" || rc=$?; fi
if [ $rc -ne 0 ] && [ -f "$out/regression.diffs" ]; then
  echo "---- regression.diffs"; cat "$out/regression.diffs"
fi
exit $rc
