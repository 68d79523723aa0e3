#!/usr/bin/env bash
# Start or stop a Docker engine the way ../shared/MACHINES.md describes: no
# bridge, no iptables, no IP forwarding (so Docker never touches a private-range
# network; every container uses host networking), its files in one folder.
#
#   bash .ci/docker-engine.sh start    # idempotent; installs docker.io docker-compose debootstrap when missing
#   bash .ci/docker-engine.sh stop     # stops the engine this script started (by its pid file)
#   bash .ci/docker-engine.sh status
#   bash .ci/docker-engine.sh purge    # stop, then delete the engine's files (images included)
#
# State (data root, exec root, pid file, log) lives in $SB_DOCKER_STATE
# (default /var/tmp/servebench-docker). It survives `stop`, so images built
# once (the base image, the Python layer) are reused by the next start.
# An engine that already answers on the socket is used as it is and never
# stopped by this script.
set -euo pipefail

STATE=${SB_DOCKER_STATE:-/var/tmp/servebench-docker}
SOCKET=/var/run/docker.sock
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
START_TIMEOUT_S=${SB_DOCKER_START_TIMEOUT_S:-60}

say() { echo "docker-engine: $*"; }

answers() { docker -H "unix://$SOCKET" info >/dev/null 2>&1; }

ours_running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

install_missing() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "missing ${missing[*]} and cannot apt-get them (not root or not Debian)"; return 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
}

unmount_leftovers() {
  # netns/default (and any container mounts) stay mounted when dockerd dies hard.
  local m
  for m in $(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

start() {
  if ours_running && answers; then
    say "already running (pid $(cat "$PIDFILE")); state in $STATE"; return 0
  fi
  if answers; then
    say "an engine not started by this script already answers on $SOCKET; using it as it is"; return 0
  fi
  install_missing
  if ours_running; then  # alive but not answering: a half-started engine from before
    stop
  fi
  mkdir -p "$STATE"
  unmount_leftovers
  # setsid: the engine outlives this script and the CI step that ran it.
  setsid dockerd --bridge=none --iptables=false --ip6tables=false \
    --ip-forward=false --ip-masq=false --data-root "$STATE/data" \
    --exec-root "$STATE/exec" --pidfile "$PIDFILE" \
    -H "unix://$SOCKET" >>"$LOG" 2>&1 </dev/null &
  local waited=0
  until answers; do
    if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
      say "the engine did not answer within ${START_TIMEOUT_S}s; last lines of $LOG:"
      tail -n 20 "$LOG" >&2 || true
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  say "started (pid $(cat "$PIDFILE")) in ${waited}s; state in $STATE (log $LOG)"
}

stop() {
  if ! [ -f "$PIDFILE" ]; then
    say "no engine started by this script (no $PIDFILE)"; return 0
  fi
  local pid; pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    # dockerd stops its containers (15 s grace each, in parallel) before it exits.
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      say "dockerd $pid still alive after 30s; killing it"; kill -KILL "$pid" 2>/dev/null || true; sleep 1
    fi
  fi
  rm -f "$PIDFILE"
  unmount_leftovers
  say "stopped; its files stay in $STATE (remove with: bash $0 purge)"
}

status() {
  if ours_running && answers; then
    say "running (pid $(cat "$PIDFILE")); state in $STATE"
  elif answers; then
    say "an engine not started by this script answers on $SOCKET"
  else
    say "not running; state (if any) in $STATE"; return 1
  fi
}

purge() {
  stop
  rm -rf "$STATE"
  say "removed $STATE"
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  purge) purge ;;
  *) echo "usage: $0 start|stop|status|purge" >&2; exit 2 ;;
esac
