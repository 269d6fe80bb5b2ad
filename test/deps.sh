#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need (when run as root), or
# prints the exact apt-get line.  Nothing else is downloaded.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" postgresql-client-common
  libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev pkg-config
  gcc make clang libclang-rt-dev curl python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
