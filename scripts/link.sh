#!/usr/bin/env bash
# Makes `swarm` a command in every new shell: links bin/swarm (a launcher that finds the Node.js 22
# scripts/setup.sh set up, whatever node the shell's PATH has) into a directory on PATH.
#   bash scripts/link.sh [DIR]   DIR: default /usr/local/bin as root, else ~/.local/bin (Debian's
#                                ~/.profile puts it on PATH in login shells once it exists)
# Run it after scripts/setup.sh; running it again changes nothing. It needs no Node.js itself.
set -euo pipefail
log() { printf '[link] %s\n' "$*" >&2; }

checkout="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
launcher="$checkout/bin/swarm"
if [ "$(id -u)" -eq 0 ]; then default_dir=/usr/local/bin; else default_dir="$HOME/.local/bin"; fi
dir="${1:-$default_dir}"

if [ ! -f "$checkout/dist/cli/swarm.js" ]; then
  log "$checkout is not built yet: run bash scripts/setup.sh first"
  exit 1
fi
mkdir -p "$dir"
link="$dir/swarm"
# Replace a link (an older one of ours, or npm link's), never a file someone put there.
if [ -e "$link" ] && [ ! -L "$link" ]; then
  log "$link exists and is not a link; move it away or give another directory: bash scripts/link.sh DIR"
  exit 1
fi
ln -sfn "$launcher" "$link"
log "$link -> $launcher"

# Whether a new login shell will find it there (the reason this script exists).
login_path="$(env -i HOME="$HOME" USER="${USER:-}" TERM=dumb bash -lc 'printf %s "$PATH"' 2>/dev/null || true)"
case ":$login_path:" in
  *":$dir:"*) log "open a new shell and run: swarm --version" ;;
  *) log "$dir is not on a login shell's PATH ($login_path); add it, e.g. in ~/.profile: PATH=\"$dir:\$PATH\"" ;;
esac
