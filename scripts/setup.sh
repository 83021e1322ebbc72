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
