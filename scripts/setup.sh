#!/usr/bin/env bash
# Installs what swarm needs, idempotently: Debian's ffmpeg, x264 and mkvtoolnix,
# a Node.js >= 22 (from the npm registry's `node` package when the system one is older),
# the npm dependencies, and a build. Source it to get the right `node` on PATH:
#   source scripts/setup.sh
set -euo pipefail
SWARM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

swarm_log() { printf '[setup] %s\n' "$*" >&2; }

swarm_need_apt=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || swarm_need_apt+=(ffmpeg)
command -v x264 >/dev/null 2>&1 || swarm_need_apt+=(x264)
command -v mkvmerge >/dev/null 2>&1 || swarm_need_apt+=(mkvtoolnix)
if [ "${SWARM_SETUP_EXTRA_APT:-}" != "" ]; then
  for p in $SWARM_SETUP_EXTRA_APT; do dpkg -s "$p" >/dev/null 2>&1 || swarm_need_apt+=("$p"); done
fi
if [ ${#swarm_need_apt[@]} -gt 0 ]; then
  swarm_log "installing Debian packages: ${swarm_need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${swarm_need_apt[@]}" >/dev/null
fi

swarm_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(swarm_node_major)" -lt 22 ]; then
  SWARM_NODE_DIR="$SWARM_ROOT/.tools/node22"
  if [ ! -x "$SWARM_NODE_DIR/node_modules/.bin/node" ]; then
    swarm_log "system Node.js is $(node --version 2>/dev/null || echo missing); fetching node@22 from the npm registry"
    mkdir -p "$SWARM_NODE_DIR"
    npm install --prefix "$SWARM_NODE_DIR" --no-save --no-audit --no-fund --loglevel=error node@22 >/dev/null
  fi
  export PATH="$SWARM_NODE_DIR/node_modules/.bin:$PATH"
fi
swarm_log "using Node.js $(node --version)"

cd "$SWARM_ROOT"
# Reinstall only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.swarm-lock-stamp; then
  swarm_log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.swarm-lock-stamp
fi
swarm_log "building"
npm run --silent build
cd - >/dev/null
