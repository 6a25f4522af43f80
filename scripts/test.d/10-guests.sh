#!/usr/bin/env bash
# Tasks in Python, JavaScript and C on a real server: tests/all/guests.rs,
# whose language tests are #[ignore]d in a plain `cargo test` because they
# need the components that scripts/setup.d/10-guests.sh builds. Run here with
# those components; a missing one fails its test.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"
for c in python_task js_task c_task; do
  [ -f "target/guests/other/$c.wasm" ] || { echo "target/guests/other/$c.wasm is missing: run scripts/setup.d/10-guests.sh" >&2; exit 1; }
done
WASMPAR_GUESTS_DIR="$TOP/target/guests/other" cargo test --release --test all -- --ignored guests::
