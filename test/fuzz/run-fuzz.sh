#!/usr/bin/env bash
# Fuzz the callback-body path (src/tsjson.c, src/tsmap.c) with libFuzzer.
# Usage: test/fuzz/run-fuzz.sh [seconds]   (default 60)
# Builds with clang -fsanitize=fuzzer,address,undefined, seeds from test/fuzz/seeds/
# (the vendor page's examples, verbatim, broken ones included) and keeps the growing
# corpus in test/fuzz/corpus-work/.  Exits non-zero on any crash, leak, sanitizer
# report or timeout; reproducers are written to test/fuzz/corpus-work/artifacts/.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 2
secs=${1:-60}
case $secs in ''|*[!0-9]*) echo "usage: $0 [seconds]" >&2; exit 2;; esac

CLANG=${CLANG:-$(command -v clang-14 || command -v clang)}
[ -n "$CLANG" ] || { echo "clang not found" >&2; exit 2; }
work=test/fuzz/corpus-work
mkdir -p "$work/corpus" "$work/artifacts"
bin=test/fuzz/fuzz_map

echo "-- fuzz: build ($CLANG)"
"$CLANG" -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wall -Werror -Isrc \
  src/tsjson.c src/tsmap.c test/fuzz/fuzz_map.c -o "$bin" || exit 2

echo "-- fuzz: run ${secs}s"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$bin" -max_total_time="$secs" -detect_leaks=1 -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -dict=test/fuzz/json.dict -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" \
  "$work/corpus" test/fuzz/seeds
rc=$?
if [ $rc -ne 0 ]; then
  echo "-- fuzz: FAILED (exit $rc); reproducers:" >&2
  ls -l "$work/artifacts" >&2
  exit 1
fi
echo "-- fuzz: no findings"
