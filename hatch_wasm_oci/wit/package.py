"""A project's own WIT as an encoded WIT package, as ``wkg build`` makes it.

wasm-tools encodes the package (its ``deps/`` resolved); the wasm-metadata sections carry the
package name (``ns:name``), its version and the project's fields (authors, description,
licenses, source, homepage, revision). The WIT package's version must be the project's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from hatch_wasm_oci.oci.tags import version_tag
from hatch_wasm_oci.wasm.metadata import embed_metadata
from hatch_wasm_oci.wit import wasm_tools
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName


def check_version(package: PackageName, project_version: str, wit_dir: Path) -> str:
    """The package version (SemVer), which must be the project's; WitError says what to change."""
    wanted = version_tag(project_version)
    if wanted.note is not None:
        raise WitError(
            f"project version {project_version} has no SemVer form for the WIT package "
            f"{package.ref} ({wanted.note})"
        )
    if package.version is None:
        raise WitError(
            f"the WIT package {package.ref} in {wit_dir} has no version: write "
            f"`package {package.ref}@{wanted.tag};`"
        )
    if package.version != wanted.tag:
        raise WitError(
            f"the WIT package is {package} but the project version is {project_version}: change "
            f"`package {package};` in {wit_dir} to `package {package.ref}@{wanted.tag};`, or the "
            f"project version to {package.version}"
        )
    return package.version


def build_wit_package(
    wit_dir: Path, output: Path, project_version: str, fields: Mapping[str, str]
) -> PackageName:
    """Encode ``wit_dir``'s package into ``output`` with wasm-metadata; returns its name."""
    package = wasm_tools.root_package(wit_dir)
    version = check_version(package, project_version, wit_dir)
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-wit-package-") as scratch:
        encoded = Path(scratch) / "package.wasm"
        wasm_tools.encode(wit_dir, encoded)
        metadata = {**fields, "name": package.ref, "version": version}
        embed_metadata(encoded, output, metadata)
    return package
