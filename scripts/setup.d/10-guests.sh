#!/usr/bin/env bash
# Tasks in Python, JavaScript and C: installs their tool chains (pinned, under
# target/toolchains/, kept between runs) and builds the example components
# into target/guests/other/{python_task,js_task,c_task}.wasm, which
# tests/all/guests.rs uploads to a real server (scripts/test.d/10-guests.sh).
#
#   Python      componentize-py   PyPI    scripts/requirements/guests.txt
#   JavaScript  componentize-js   npm     scripts/package.json
#   C           clang + wasi-libc Debian  (core module, wasm32-wasi)
#               wit-bindgen c     crates.io, cargo install (WIT_BINDGEN_VERSION)
#               jco embed / new   npm     (WIT metadata; the WASI preview1 reactor adapter)
#
# A component is rebuilt only when its sources, the engine's WIT or the tool
# versions changed (a stamp beside it records their hash).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

WIT_BINDGEN_VERSION=0.63.0
OUT="$TOP/target/guests/other"
CARGO_TOOLS="$TOOLCHAINS/cargo"
export PATH="$CARGO_TOOLS/bin:$PATH"

step "guest tool chains: Debian clang/lld/wasi-libc, componentize-py, componentize-js, wit-bindgen $WIT_BINDGEN_VERSION"
apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32
python_venv
npm_tools
if [ "$(wit-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WIT_BINDGEN_VERSION" ]; then
  # Only the C generator: a few minutes once, then cached under target/toolchains/cargo.
  cargo install --quiet --locked --version "$WIT_BINDGEN_VERSION" --no-default-features --features c \
    --root "$CARGO_TOOLS" wit-bindgen-cli
fi

# build NAME DIR: DIR/build.sh writes $OUT/NAME.wasm unless nothing it depends on changed.
build() {
  local name="$1" dir="$TOP/examples/$2" out="$OUT/$1.wasm" want have=""
  want=$(
    cd "$dir"
    # -L: wit/deps/engine.wit is a link to the engine's WIT, hash what it points to.
    find -L . -type f ! -path './build/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
    componentize-py --version; componentize-js --version; wit-bindgen --version; jco --version; clang --version | head -1
  )
  want=$(printf '%s' "$want" | sha256sum | cut -d' ' -f1)
  [ -f "$out.stamp" ] && have=$(cat "$out.stamp")
  if [ -f "$out" ] && [ "$want" = "$have" ]; then
    echo "$name.wasm is up to date ($(du -h "$out" | cut -f1))"
    return
  fi
  local t0=$SECONDS
  rm -f "$out.stamp"
  "$dir/build.sh" "$out"
  echo "$want" > "$out.stamp"
  echo "built $name.wasm in $((SECONDS - t0)) s ($(du -h "$out" | cut -f1))"
}

mkdir -p "$OUT"
build python_task python-task
build js_task js-task
build c_task c-task
