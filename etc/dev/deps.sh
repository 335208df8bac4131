#!/usr/bin/env bash
# Install the Debian packages needed to build, run and test ingest-host.
# Idempotent: apt-get is only called when something is missing.
set -euo pipefail

PKGS=(
  build-essential meson ninja-build pkg-config
  libevent-dev libcurl4-openssl-dev libssl-dev libpq-dev libjson-c-dev
  libconfig-dev libcmocka-dev
  postgresql postgresql-contrib
  python3 python3-pytest python3-psycopg2
  valgrind cppcheck clang libclang-rt-14-dev
  curl ca-certificates procps
)

missing=()
for p in "${PKGS[@]}"; do
  # "install ok installed" is the only state that means the package is usable.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "deps.sh: installing: ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
