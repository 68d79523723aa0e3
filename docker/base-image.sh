#!/usr/bin/env bash
# Build the suite's base image offline, from Debian packages, for hosts where no
# image can be pulled (see ../shared/MACHINES.md):
#
#   debootstrap --variant=minbase bookworm  ->  docker import local/debian:bookworm
#   docker/Dockerfile.base FROM it: python3, python3-venv, ca-certificates
#                                   (+ the proxy CA certificates)  ->  servebench/base:bookworm
#
# Then build the services on it:
#
#   make images BASE_IMAGE=servebench/base:bookworm
#   make up ARCH=fastapi RUNTIME=docker BASE_IMAGE=servebench/base:bookworm
#
# Idempotent: an existing tag is kept (SB_REBUILD_BASE=1 rebuilds both images).
# Settings: SB_BASE_TAG, SB_ROOTFS_TAG, SB_DEBIAN_MIRROR, SB_EXTRA_CA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_TAG=${SB_BASE_TAG:-servebench/base:bookworm}
ROOTFS_TAG=${SB_ROOTFS_TAG:-local/debian:bookworm}
MIRROR=${SB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_DIR=${SB_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}

say() { echo "base-image: $*"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || { say "no Docker engine answers (start one: bash .ci/docker-engine.sh start)"; exit 1; }

if [ "${SB_REBUILD_BASE:-0}" != 1 ] && have_image "$BASE_TAG"; then
  say "$BASE_TAG exists; nothing to do (SB_REBUILD_BASE=1 rebuilds it)"
  exit 0
fi

# Extra CA certificates for an intercepting proxy: copied in, never committed.
bash docker/copy-certs.sh "$CA_DIR"

start=$(date +%s)
if [ "${SB_REBUILD_BASE:-0}" = 1 ] || ! have_image "$ROOTFS_TAG"; then
  command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  [ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 1; }
  rootfs=$(mktemp -d /var/tmp/servebench-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap --variant=minbase bookworm from $MIRROR (about a minute)"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # Keep the image small: package caches and lists are fetched again when needed.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$ROOTFS_TAG" >/dev/null
  say "imported $ROOTFS_TAG"
fi

say "building $BASE_TAG (python3, python3-venv, ca-certificates)"
buildlog=$(mktemp /var/tmp/servebench-base-build.XXXXXX)
if ! docker build --network host --build-arg ROOTFS_IMAGE="$ROOTFS_TAG" \
    -f docker/Dockerfile.base -t "$BASE_TAG" docker >"$buildlog" 2>&1; then
  tail -n 30 "$buildlog" >&2; rm -f "$buildlog"; exit 1
fi
rm -f "$buildlog"
say "built $BASE_TAG in $(( $(date +%s) - start ))s; use it with BASE_IMAGE=$BASE_TAG"
