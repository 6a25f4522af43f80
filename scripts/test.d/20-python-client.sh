#!/usr/bin/env bash
# The Python client (clients/python, import wasmpar) against a real cluster:
# installs the package into the suite venv, starts `wasmpar start -n 8 --daemon`
# on a free loopback port from target/release/wasmpar (built by `cargo test
# --release` before this runs), runs pytest — the tutorial cells, the client,
# numpy, the magics, and docs/tutorial.ipynb under nbclient on a cluster of its
# own — and stops every server even on failure. No tests collected (pytest's
# exit 5) is a failure.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"

python_venv
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./clients/python

BIN="$TOP/target/release/wasmpar"
[ -x "$BIN" ] || cargo build --release
export WASMPAR_BIN="$BIN"
export WASMPAR_GUESTS_DIR="$TOP/target/guests/wasm32-wasip2/release"
[ -f "$WASMPAR_GUESTS_DIR/seed.wasm" ] || { echo "no guest components in $WASMPAR_GUESTS_DIR" >&2; exit 1; }

WORK="$(mktemp -d)"
export WASMPAR_CONNECTION_FILE="$WORK/cluster.json"
cleanup() {
  "$BIN" --connection-file "$WASMPAR_CONNECTION_FILE" stop >/dev/null 2>&1 || true
  # The notebook's own cluster, if pytest was killed before it stopped it.
  for f in "$WORK"/pytest/nbcluster*/cluster.json "$WORK"/pytest/cluster*/cluster.json; do
    [ -f "$f" ] && "$BIN" --connection-file "$f" stop >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" --connection-file "$WASMPAR_CONNECTION_FILE" start -n 8 --daemon --call-timeout 20 --cache-dir "$WORK/cache"

# The installed package, not the source tree, is what the tests import.
cd "$WORK"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider --basetemp "$WORK/pytest" "$TOP/clients/python/tests" -q
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
