#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs, then starts a local three-node swarm on
# 127.0.0.1 (no mDNS), adds a generated sample, shows progress, and prints the output and its checks.
# Options go to scripts/demo.ts: `--encoder svt-av1` (or x265, aomenc) encodes with that encoder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec node dist/scripts/demo.js "$@"
