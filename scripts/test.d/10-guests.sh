#!/usr/bin/env bash
# Tasks in Python, JavaScript and C on a real server: tests/all/guests.rs,
# whose language tests are #[ignore]d in a plain `cargo test` because they
# need the components that scripts/setup.d/10-guests.sh builds. Run here with
# those components; a missing one fails its test. The figures (sizes, upload
# and per-call times) are measured last, alone, and printed.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"
export WASMPAR_GUESTS_DIR="$TOP/target/guests/other"
for c in python_task js_task c_task; do
  [ -f "$WASMPAR_GUESTS_DIR/$c.wasm" ] || { echo "$WASMPAR_GUESTS_DIR/$c.wasm is missing: run scripts/setup.d/10-guests.sh" >&2; exit 1; }
done
cargo test --release --test all -- --ignored guests:: --skip guests::figures_per_language
cargo test --release --test all -- --ignored guests::figures_per_language --test-threads 1 --nocapture
