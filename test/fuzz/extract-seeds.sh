#!/usr/bin/env bash
# Extract the JSON examples of the vendor page verbatim (broken ones included) into
# test/fuzz/seeds/.  A block starts at a line that is exactly "{" and ends at the next
# line that is exactly "}" (or at the end of the file).  Re-run when the page changes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
page="$repo/test/seed/billed-usage-api.txt"
out="$repo/test/fuzz/seeds"
names=(request-line-level request-device-id request-label request-device-ids
       status-200 per-apn per-apn-device per-rating-group per-rating-group-device
       per-rating-group-label line-level error-400)
mkdir -p "$out"
i=0
awk '/^\{[ \t\r]*$/ && !inb { inb=1; s=NR } inb && /^\}[ \t\r]*$/ && NR>s { print s, NR; inb=0 }
     END { if (inb) print s, "$" }' "$page" |
while read -r from to; do
  name=${names[$i]:-example-$i}
  i=$((i + 1))
  sed -n "${from},${to}p" "$page" > "$out/$(printf '%02d' "$i")-$name.json"
done
ls "$out"
