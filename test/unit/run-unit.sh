#!/usr/bin/env bash
# Unit tests of src/tsjson.c and src/tsmap.c (no PostgreSQL needed).
# Builds twice with gcc and warnings as errors — optimised, then with ASan/UBSan when the
# toolchain has them — and runs the tests; exit status non-zero on any failure.
# BENCH=1 also runs the throughput bench (test/unit/bench_tsmap.c).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
out=${UNIT_BUILD_DIR:-$(mktemp -d /tmp/thingspace_fdw_unit.XXXXXX)}
trap '[ -z "${UNIT_BUILD_DIR:-}" ] && rm -rf "$out"' EXIT
CC=${CC:-gcc}
WARN="-std=c99 -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes -Wpointer-arith
      -Wdeclaration-after-statement -Wmissing-format-attribute -Wimplicit-fallthrough=3
      -Wformat-security -Werror"
SRC="src/tsjson.c src/tsmap.c test/unit/test_tsmap.c"

echo "-- unit: build (-O2)"
$CC $WARN -O2 -g -Isrc $SRC -o "$out/test_tsmap"
"$out/test_tsmap" "$repo"

if echo 'int main(void){return 0;}' | $CC -fsanitize=address,undefined -x c - -o "$out/probe" 2>/dev/null; then
  echo "-- unit: build (ASan + UBSan)"
  $CC $WARN -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Isrc $SRC -o "$out/test_tsmap_asan"
  ASAN_OPTIONS=detect_leaks=1 "$out/test_tsmap_asan" "$repo"
else
  echo "-- unit: sanitizers unavailable, skipped"
fi

echo "-- unit: bench build check (BENCH=1 to run it)"
$CC $WARN -O2 -Isrc src/tsjson.c src/tsmap.c test/unit/bench_tsmap.c -o "$out/bench_tsmap"
if [ "${BENCH:-0}" = 1 ]; then "$out/bench_tsmap"; fi
