#!/usr/bin/env bash
# The dashboard in a real browser (issue 15): Debian's chromium, driven
# headless by Playwright for Python, against real `wasmpar start` servers on
# free loopback ports started by the test itself from target/release/wasmpar
# (tests/browser/test_dashboard.py: sign-in with the token, live engine table,
# the Mandelbrot's tasks appearing and finishing, its image, /metrics, the
# history query, a restart after SIGKILL on the same task store). The
# screenshot and the server log are saved under target/artifacts/. No tests
# collected (pytest's exit 5) is a failure.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"

apt_install chromium
python_venv

BIN="$TOP/target/release/wasmpar"
[ -x "$BIN" ] || cargo build --release
export WASMPAR_BIN="$BIN"
export WASMPAR_GUESTS_DIR="$TOP/target/guests/wasm32-wasip2/release"
export WASMPAR_ARTIFACTS="$TOP/target/artifacts"
export WASMPAR_CHROMIUM="$(command -v chromium)"
[ -f "$WASMPAR_GUESTS_DIR/mandelbrot.wasm" ] || { echo "no guest components in $WASMPAR_GUESTS_DIR" >&2; exit 1; }
mkdir -p "$WASMPAR_ARTIFACTS"

WORK="$(mktemp -d)"
export WASMPAR_WORK="$WORK"
# The test stops its servers itself; this catches one left by a killed pytest.
cleanup() {
  local f pid
  for f in "$WORK"/wasmpar-dashboard-*/cluster.json; do
    [ -f "$f" ] || continue
    pid=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$f" 2>/dev/null || true)
    [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = wasmpar ] && kill "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider --basetemp "$WORK/pytest" "$TOP/tests/browser" -v
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
[ -f "$WASMPAR_ARTIFACTS/dashboard.png" ] && echo "screenshot: $WASMPAR_ARTIFACTS/dashboard.png" >&2
exit "$rc"
