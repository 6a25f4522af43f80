#!/usr/bin/env bash
# The Python runner (examples/python-runner, docs/python-cells.md) on a real
# server: examples/python-runner/check.py starts `wasmpar start -n 2 --daemon`
# on a free loopback port with its own connection file, uploads the runner
# that scripts/setup.d/15-python-runner.sh built, runs cells through the API
# (namespace both ways, errors, sandbox, deadline, memory cap, --noblock) and
# stops the server, also on failure.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"
RUNNER="$TOP/target/guests/other/python_runner.wasm"
[ -f "$RUNNER" ] || { echo "$RUNNER is missing: run scripts/setup.d/15-python-runner.sh" >&2; exit 1; }
BIN="$TOP/target/release/wasmpar"
[ -x "$BIN" ] || cargo build --release
python3 examples/python-runner/check.py --wasmpar "$BIN" --runner "$RUNNER" \
  --seed "$TOP/target/guests/wasm32-wasip2/release/seed.wasm"
