#!/usr/bin/env bash
# thingspace_fdw benchmarks (README: `make bench`).
#
# Builds and installs the extension when the installed copy differs, starts a throwaway
# cluster and simulator (test/cluster.sh) in a temp dir, always stops them, and prints
# one table with every case side by side (test/bench/bench.py: figures, ratios, and a
# check that all methods of case 1 agree on the sums).
#
#   test/bench/run-bench.sh            # BENCH_DEVICES=50000 etc.: see bench.py
#   KEEP=1 test/bench/run-bench.sh     # keep the work dir (logs) after the run
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

echo "== build" >&2
make -s COPT=-Werror >/dev/null || exit 1
installed="$(pg_config --pkglibdir)/thingspace_fdw.so"
if ! cmp -s thingspace_fdw.so "$installed" ||
   ! cmp -s thingspace_fdw--1.0.sql "$(pg_config --sharedir)/extension/thingspace_fdw--1.0.sql"; then
  echo "== install" >&2
  make -s install >/dev/null || exit 1
fi

work=$(mktemp -d /tmp/thingspace_bench.XXXXXX)
cleanup() {
  "$repo/test/cluster.sh" stop "$work"
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "work dir kept: $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$repo/test/cluster.sh" start "$work" || exit 1
# shellcheck disable=SC1091
. "$work/env"

# the cluster loaded the library at start: make sure it is the one just built
cmp -s thingspace_fdw.so "$installed" ||
  echo "warning: the installed thingspace_fdw.so changed meanwhile (another build?)" >&2

/usr/bin/python3 "$repo/test/bench/bench.py"
