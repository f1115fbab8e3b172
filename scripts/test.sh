#!/usr/bin/env bash
# The test command: installs what it needs, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The dashboard test drives Debian's chromium (through playwright-core) and the LAN test builds network
# namespaces with iproute2; setup.sh installs them when missing.
export SWARM_SETUP_EXTRA_APT="chromium iproute2 nftables"
source scripts/setup.sh
# The tests are typechecked too (tsc builds only src, cli, bench and scripts): a test double that
# answers with a code the product never sends, or a fixture missing a field, fails here.
npx tsc -p tsconfig.test.json
# vitest's summary is for people; a plain "N passed, N failed" line closes the run for CI.
# Off a terminal (CI, a log file) the output has no colour codes: CI read none of the last three
# green runs' coloured summaries as a run of tests.
report="$(mktemp -t swarm-vitest-XXXXXX.json)"
colour=()
[ -t 1 ] || colour=(--no-color)
status=0
npx vitest run "${colour[@]}" --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
if [ -s "$report" ]; then node dist/scripts/test-summary.js "$report" || status=1; fi
rm -f "$report"
exit "$status"
