#!/usr/bin/env bash
# Builds python_task.wasm from app.py and wit/ with componentize-py.
#   ./build.sh [OUT]     (default: target/guests/other/python_task.wasm at the repo's top)
# componentize-py must be on PATH (scripts/setup.d/10-guests.sh installs the
# pinned one into target/toolchains/venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/guests/other/python_task.wasm}"
mkdir -p "$(dirname "$out")"
cd "$here"
componentize-py --wit-path wit --world python-task componentize app --output "$out"
