#!/usr/bin/env bash
# Builds c_task.wasm from app.c and wit/:
#   1. wit-bindgen c       generates c_task.{h,c} from the world (in a scratch folder)
#   2. clang               compiles them with wasi-libc to a core module (wasm32-wasi, reactor)
#      with c_task_component_type.o, the world's type information
#   3. jco new             makes the component, adapting WASI preview1 to 0.2 (the reactor adapter)
#   ./build.sh [OUT]     (default: target/guests/other/c_task.wasm at the repo's top)
# Needs on PATH: clang (with Debian's wasi-libc and libclang-rt-dev-wasm32),
# wit-bindgen and jco (for its bundled adapter); scripts/setup.d/10-guests.sh installs the pinned ones.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/guests/other/c_task.wasm}"
mkdir -p "$(dirname "$out")"
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
cd "$here"
wit-bindgen c wit --world c-task --out-dir "$gen" 2>/dev/null
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
  -I "$gen" -o "$gen/core.wasm" app.c "$gen/c_task.c" "$gen/c_task_component_type.o"
jco new "$gen/core.wasm" --wasi-reactor -o "$out"
