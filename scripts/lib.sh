# Shared by scripts/test and its suites. Source it; do not run it.
#
# Tool chains live under target/toolchains/ (kept between runs, removed by
# `cargo clean`): one Python venv, one npm prefix, each pinned.
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLCHAINS="$TOP/target/toolchains"
VENV="$TOOLCHAINS/venv"
NPM_PREFIX="$TOOLCHAINS/npm"
export PATH="$VENV/bin:$NPM_PREFIX/node_modules/.bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }

# Pids of what a suite started, stopped by stop_started (call it from a trap).
STARTED_PIDS=()
stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}

# python_venv: make the venv if missing and install every pinned file in
# scripts/requirements/*.txt when any of them changed since the last install.
python_venv() {
  mkdir -p "$TOOLCHAINS"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local want have="" args=() f
  want=$(cat "$TOP"/scripts/requirements/*.txt | sha256sum | cut -d' ' -f1)
  [ -f "$VENV/.requirements" ] && have=$(cat "$VENV/.requirements")
  if [ "$want" != "$have" ]; then
    for f in "$TOP"/scripts/requirements/*.txt; do args+=(-r "$f"); done
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
    echo "$want" > "$VENV/.requirements"
  fi
}

# npm_tools: install scripts/package.json's pinned packages under target/.
npm_tools() {
  mkdir -p "$NPM_PREFIX"
  local want have=""
  want=$(sha256sum "$TOP/scripts/package.json" | cut -d' ' -f1)
  [ -f "$NPM_PREFIX/.package" ] && have=$(cat "$NPM_PREFIX/.package")
  if [ "$want" != "$have" ]; then
    cp "$TOP/scripts/package.json" "$NPM_PREFIX/package.json"
    (cd "$NPM_PREFIX" && npm install --no-audit --no-fund --loglevel=error)
    echo "$want" > "$NPM_PREFIX/.package"
  fi
}

# apt_install PKG...: install Debian packages that are missing.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
