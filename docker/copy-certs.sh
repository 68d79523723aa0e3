#!/usr/bin/env bash
# Copy extra CA certificates (an intercepting proxy's) into docker/certs/, the
# folder every Dockerfile installs from. Never committed (.gitignore).
#   bash docker/copy-certs.sh [DIR]   (default /usr/local/share/ca-certificates)
set -euo pipefail
src=${1:-${SB_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}}
dest="$(cd "$(dirname "$0")" && pwd)/certs"
mkdir -p "$dest"
shopt -s nullglob
certs=("$src"/*.crt)
[ ${#certs[@]} -eq 0 ] && exit 0
cp -f "${certs[@]}" "$dest"/
echo "certs: ${#certs[@]} extra CA certificate(s) from $src into docker/certs/"
