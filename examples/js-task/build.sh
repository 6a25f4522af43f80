#!/usr/bin/env bash
# Builds js_task.wasm from app.js and wit/ with componentize-js.
#   ./build.sh [OUT]     (default: target/guests/other/js_task.wasm at the repo's top)
# componentize-js must be on PATH (scripts/setup.d/10-guests.sh installs the
# pinned one into target/toolchains/npm).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/guests/other/js_task.wasm}"
mkdir -p "$(dirname "$out")"
cd "$here"
componentize-js app.js --wit wit --world-name js-task --out "$out"
