"""``python -m hatch_wasm_oci``: the same as the ``hatch-wasm-oci`` command."""

import sys

from hatch_wasm_oci.cli.main import main

sys.exit(main())
