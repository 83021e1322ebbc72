#!/usr/bin/env bash
# Set up (scripts/setup.sh), then build example-project into a Wasm OCI layout with
# `hatch build -t wasm-oci`, verify it, and call the component's exports with hatch_wasm_oci.load().
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

# hatch-wasm-oci is not on PyPI: Hatch's isolated build environment takes the plugin wheel
# built from this checkout (tests/hatch_fixtures.py does the same for the tests).
state="$PWD/.cache/build-example"
rm -rf "$state/wheelhouse" "$state/plugin-source" "$state/hatch/data"
mkdir -p "$state"
eval "$(python - "$state" <<'PY'
import shlex, sys
from pathlib import Path
from tests.hatch_fixtures import hatch_environment, make_wheelhouse
state = Path(sys.argv[1])
wheelhouse = make_wheelhouse(state / "wheelhouse", state / "plugin-source")
env = hatch_environment(wheelhouse, state / "hatch")
for key in ("PIP_FIND_LINKS", "UV_FIND_LINKS", "PIP_CONSTRAINT", "UV_CONSTRAINT",
            "HATCH_DATA_DIR", "HATCH_CACHE_DIR", "HATCH_WASM_OCI_CACHE"):
    print(f"export {key}={shlex.quote(env[key])}")
PY
)"

cd example-project
hatch build -t wasm-oci
layout=dist/wasm-oci/example_inventory-0.1.0
hatch-wasm-oci verify "$layout"
python call_inventory.py "$layout"
