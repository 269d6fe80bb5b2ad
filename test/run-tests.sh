#!/usr/bin/env bash
# The whole test suite (README: `make test`; CI: .ci/run).
#
# Installs missing Debian packages (as root), builds with warnings as errors, starts a
# throwaway cluster and the simulator, runs every suite, always stops both, and exits
# non-zero if anything failed.  FUZZ_SECONDS (default 60) bounds the fuzz run.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
"$repo/test/deps.sh" || exit 1

echo "== build (warnings are errors)"
make -s clean >/dev/null 2>&1
make -s COPT=-Werror || exit 1
make -s install >/dev/null || exit 1

work=$(mktemp -d /tmp/thingspace_fdw_test.XXXXXX)
cleanup() { "$repo/test/cluster.sh" stop "$work"; }
trap cleanup EXIT
"$repo/test/cluster.sh" start "$work" || exit 1
# shellcheck disable=SC1091
. "$work/env"

failed=()
run_suite() {
  local name=$1; shift
  echo "== $name"
  if "$@"; then echo "-- $name: ok"; else echo "-- $name: FAILED"; failed+=("$name"); fi
}

suite_unit() { "$repo/test/unit/run-unit.sh"; }
suite_sim() { /usr/bin/python3 "$repo/test/sim/selftest.py"; }

suite_regress() { "$repo/test/regress.sh" "$work"; }

suite_integration() {
  local rc=0 t
  for t in "$repo"/test/integration/test_*.py; do
    [ -e "$t" ] || continue
    echo "-- $(basename "$t")"
    /usr/bin/python3 "$t" || rc=1
  done
  return $rc
}

# libFuzzer is chatty: keep its log, show the end of it on failure.
suite_fuzz() {
  if "$repo/test/fuzz/run-fuzz.sh" "${FUZZ_SECONDS:-60}" >"$work/fuzz.log" 2>&1; then
    grep -E '^-- fuzz|^#[0-9]+.*DONE' "$work/fuzz.log" | tail -n 3
  else
    tail -n 60 "$work/fuzz.log"; return 1
  fi
}

# Secrets used by the tests must never appear in the server log (statement echoes of the
# user's own CREATE USER MAPPING text excepted: that is PostgreSQL quoting the user).
suite_secrets() {
  local pat="test-secret|test-pass|wrong-pass|$CALLBACK_PASSWORD"
  if grep -vE '^\s|STATEMENT:' "$work/postgres.log" | grep -E "$pat"; then
    echo "secret found in the server log" >&2; return 1
  fi
  if grep -rhE "$pat" "$work/regress/results" 2>/dev/null | grep -E '^(ERROR|WARNING|DETAIL|HINT|CONTEXT|NOTICE):|^ +(Request|Body)'; then
    echo "secret found in an error or EXPLAIN output" >&2; return 1
  fi
}

[ -x test/unit/run-unit.sh ] && run_suite unit suite_unit
run_suite simulator suite_sim
run_suite regress suite_regress
run_suite integration suite_integration
[ -x test/fuzz/run-fuzz.sh ] && run_suite fuzz suite_fuzz
run_suite secrets suite_secrets

echo
if [ ${#failed[@]} -eq 0 ]; then
  echo "ALL SUITES PASSED"
else
  echo "FAILED SUITES: ${failed[*]}"
  echo "---- last lines of the server log"; tail -n 40 "$work/postgres.log"
  exit 1
fi
