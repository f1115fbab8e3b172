#!/usr/bin/env bash
# The test command: installs what it needs, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The dashboard test drives Debian's chromium (through playwright-core); setup.sh installs it when missing.
export SWARM_SETUP_EXTRA_APT="chromium"
source scripts/setup.sh
exec npx vitest run "$@"
