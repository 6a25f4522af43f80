#!/usr/bin/env bash
# Builds the Python runner component with componentize-py.
#
#   examples/python-runner/build.sh [OUT]     default OUT: target/guests/other/python_runner.wasm
#
# Uses the componentize-py on PATH (scripts/setup.d/15-python-runner.sh puts the
# pinned one from target/toolchains/venv there; scripts/requirements/guests.txt
# pins it). The engine's WIT package comes from wit/ at the top of the repo.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$TOP/target/guests/other/python_runner.wasm}"
WANT="componentize-py 0.25.1"

have="$(componentize-py --version 2>/dev/null || true)"
if [ "$have" != "$WANT" ]; then
  echo "build.sh: need $WANT on PATH, found '${have:-none}' (run scripts/setup.d/15-python-runner.sh)" >&2
  exit 1
fi
mkdir -p "$(dirname "$OUT")"
# Build in a scratch directory: componentize-py writes the generated bindings
# next to nothing of ours, and only app.py is the app.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$HERE/app.py" "$work/app.py"
(cd "$work" && componentize-py \
  -d "$TOP/wit" -d "$HERE/wit" \
  -w wasmpar-examples:python-runner/python-runner@0.1.0 --quiet \
  componentize app -p "$work" -o "$work/out.wasm")
mv "$work/out.wasm" "$OUT"
echo "built $OUT ($(du -h "$OUT" | cut -f1))" >&2
