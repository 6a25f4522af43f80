#!/usr/bin/env bash
# Builds the Python runner component (examples/python-runner, docs/python-cells.md)
# into target/guests/other/python_runner.wasm with the pinned componentize-py
# of the shared venv (scripts/requirements/guests.txt). Rebuilds only when its
# sources, the engine's WIT or the componentize-py version changed (a stamp
# beside the output records their hash).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

python_venv
out="$TOP/target/guests/other/python_runner.wasm"
want=$(
  cd "$TOP"
  sha256sum examples/python-runner/app.py examples/python-runner/build.sh \
    examples/python-runner/wit/world.wit wit/engine.wit
  componentize-py --version
)
want=$(echo "$want" | sha256sum | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$want" ]; then
  echo "python runner up to date: $out" >&2
  exit 0
fi
"$TOP/examples/python-runner/build.sh" "$out"
echo "$want" > "$out.stamp"
