#!/usr/bin/env bash
# Installs what swarm needs, idempotently: Debian's ffmpeg, mkvtoolnix and the encoders (x264,
# x265, svt-av1, aom-tools: a worker advertises those it has), a Node.js >= 22
# (from the npm registry's `node` package when the system one is older), the npm dependencies,
# and a build; it records the Node.js it used as .tools/node for bin/swarm. Run it (`bash
# scripts/setup.sh`), then `bash scripts/link.sh` to make `swarm` a command in every shell; or
# source it to also get that Node.js on PATH (`source scripts/setup.sh`); sourcing leaves your
# shell's options as they were.
SWARM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SWARM_NODE_BIN="$SWARM_ROOT/.tools/node22/node_modules/.bin"

swarm_setup() (
  set -euo pipefail
  log() { printf '[setup] %s\n' "$*" >&2; }

  need_apt=()
  command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
  command -v x264 >/dev/null 2>&1 || need_apt+=(x264)
  command -v x265 >/dev/null 2>&1 || need_apt+=(x265)
  command -v SvtAv1EncApp >/dev/null 2>&1 || need_apt+=(svt-av1)
  command -v aomenc >/dev/null 2>&1 || need_apt+=(aom-tools)
  command -v mkvmerge >/dev/null 2>&1 || need_apt+=(mkvtoolnix)
  for p in ${SWARM_SETUP_EXTRA_APT:-}; do dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p"); done
  if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi

  node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
  if [ "$(node_major)" -lt 22 ]; then
    if [ ! -x "$SWARM_NODE_BIN/node" ]; then
      log "system Node.js is $(node --version 2>/dev/null || echo missing); fetching node@22 from the npm registry"
      mkdir -p "$SWARM_ROOT/.tools/node22"
      npm install --prefix "$SWARM_ROOT/.tools/node22" --no-save --no-audit --no-fund --loglevel=error node@22 >/dev/null
    fi
    export PATH="$SWARM_NODE_BIN:$PATH"
  fi
  log "using Node.js $(node --version)"

  cd "$SWARM_ROOT"
  # Reinstall only when the lock file changed since the last install.
  if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.swarm-lock-stamp; then
    log "installing npm dependencies"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.swarm-lock-stamp
  fi
  log "building"
  npm run --silent build
  # bin/swarm (the command scripts/link.sh installs) runs with this very Node.js, from any shell,
  # whatever node that shell's PATH has.
  mkdir -p "$SWARM_ROOT/.tools"
  ln -sfn "$(readlink -f "$(command -v node)")" "$SWARM_ROOT/.tools/node"
)

if swarm_setup; then
  if [ -x "$SWARM_NODE_BIN/node" ] && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ]; then
    export PATH="$SWARM_NODE_BIN:$PATH"
  fi
  swarm_setup_status=0
else
  swarm_setup_status=$?
  printf '[setup] failed (exit %s); see the messages above\n' "$swarm_setup_status" >&2
fi
# `return` when sourced, `exit` when run.
return "$swarm_setup_status" 2>/dev/null || exit "$swarm_setup_status"
