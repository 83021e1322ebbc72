"""What is inside a component: its SBOM, CycloneDX 1.6 JSON made with cyclonedx-python-lib.

componentize-py snapshots the app after importing it: the Python modules it bundles are the
ones the app imports (measured: ``import idna`` bundles ``idna/core.py`` and the modules it
imports, not ``idna/codec.py``, and nothing of an installed but unimported distribution). The
same import graph is followed here, statically, with :mod:`modulefinder` over the compiler's
path (the ``python-path`` entries, then the build environment's site-packages that
componentize-py is given), and each module file is mapped to the distribution whose ``RECORD``
lists it. Every listed distribution carries its name, version, license, PURL and the SHA-256 of
each of its bundled files. CPython (the interpreter componentize-py embeds) is a component;
componentize-py, the build's Python and hatch-wasm-oci are the tools.

For a ``command`` build the SBOM holds the command and the digest of every input file; for a
prebuilt ``path``, that file's digest. The document is reproducible: its serial number derives
from the component's digest, its time is the build's ``created`` (SOURCE_DATE_EPOCH).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
import sysconfig
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hatch_wasm_oci import __version__
from hatch_wasm_oci.files.digest import file_digest
from hatch_wasm_oci.project.settings import CommandSource, ComponentizePySource, WasmOciSettings

#: Input files listed one by one in a ``command`` build's SBOM (the tree digest covers all).
MAX_LISTED_FILES = 5000
_GUEST_PYTHON = re.compile(rb"(3\.\d{1,2}\.\d{1,3}) \(main, ")


@dataclass(frozen=True)
class Bundled:
    """A distribution bundled into the component: what the app imports of it."""

    name: str
    version: str
    license: str | None
    files: tuple[tuple[str, str], ...]
    """``(path inside site-packages, sha256 hex)``, sorted."""


def site_directories() -> list[Path]:
    """The site-packages componentize-py sees: this build environment's, when it is a virtual
    environment (see :func:`~hatch_wasm_oci.project.componentize.compiler_env`), else none."""
    if sys.prefix == sys.base_prefix:
        return []
    paths = sysconfig.get_paths()
    found = dict.fromkeys(os.path.realpath(paths[key]) for key in ("purelib", "platlib"))
    return [Path(p) for p in found if os.path.isdir(p)]


def imported_files(app: str, path: Sequence[Path]) -> set[str]:
    """The files of every module ``app`` imports (transitively) found on ``path``; imports
    found nowhere there (the standard library, generated bindings) are not followed."""
    from modulefinder import ModuleFinder

    finder = ModuleFinder(path=[str(p) for p in path])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            finder.import_hook(app)
    except (ImportError, SyntaxError, ValueError):
        pass
    files = set()
    for module in finder.modules.values():
        name = getattr(module, "__file__", None)
        if name:
            files.add(os.path.abspath(name))
    return files


def _license(dist: importlib.metadata.Distribution) -> str | None:
    meta = dist.metadata
    expression = meta["License-Expression"]
    if expression:
        return str(expression).strip()
    text = meta["License"]
    if text and "\n" not in str(text).strip() and len(str(text)) <= 100:
        return str(text).strip()
    for classifier in meta.get_all("Classifier") or []:
        if str(classifier).startswith("License :: "):
            return str(classifier).rsplit(" :: ", 1)[-1]
    return None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_paths(dist: importlib.metadata.Distribution) -> list[str]:
    """The paths a distribution's ``RECORD`` lists (first CSV field; no quoting in practice)."""
    text = dist.read_text("RECORD") or ""
    paths = []
    for line in text.splitlines():
        path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
        if path:
            paths.append(path.strip('"'))
    return paths


def bundled_distributions(source: ComponentizePySource, root: Path) -> list[Bundled]:
    """The distributions of the build environment that ``source``'s app imports."""
    sites = site_directories()
    if not sites:
        return []
    tops = [(root / top).resolve() for top in source.python_path or (".",)]
    site_prefixes = tuple(str(s) + os.sep for s in sites)
    files = {f for f in imported_files(source.app, [*tops, *sites]) if f.startswith(site_prefixes)}
    if not files:
        return []
    found: dict[str, Bundled] = {}
    for dist in importlib.metadata.distributions(path=[str(s) for s in sites]):
        base = os.path.abspath(str(dist.locate_file("")))
        included = []
        for record in _record_paths(dist):
            full = os.path.normpath(os.path.join(base, record))
            if full in files:
                included.append((Path(record).as_posix(), file_digest(Path(full))[7:]))
        if not included:
            continue
        name = _normalized(dist.metadata["Name"] or "")
        if name and name not in found:
            found[name] = Bundled(name, dist.version, _license(dist), tuple(sorted(included)))
    return sorted(found.values(), key=lambda b: b.name)


def guest_python(wasm: Path) -> str | None:
    """The version of the CPython componentize-py embedded (``sys.version`` in the snapshot)."""
    with wasm.open("rb") as fh:
        data = fh.read()
    match = _GUEST_PYTHON.search(data)
    return match.group(1).decode() if match else None


def source_files(root: Path, exclude: Iterable[Path]) -> list[tuple[str, str]]:
    """``(path relative to root, sha256 hex)`` of every project file, sorted (the rule the
    compile cache key uses: hidden directories, ``__pycache__``, bytecode and ``exclude``
    skipped). An excluded file is skipped too: a command's output is no input of itself."""
    from hatch_wasm_oci.project.componentize import _walk_files

    excluded = {Path(p).resolve() for p in exclude}
    top = Path(root).resolve()
    return [
        (file.relative_to(top).as_posix(), file_digest(file)[7:])
        for file in _walk_files(top, excluded)
        if file.is_file() and not file.is_symlink() and file.resolve() not in excluded
    ]


@dataclass(frozen=True)
class SbomInputs:
    """What the SBOM describes: the project, the component, how it was made."""

    name: str
    version: str
    layer_digest: str
    created: str
    settings: WasmOciSettings
    root: Path
    wasm: Path
    sources: Sequence[tuple[str, str]]
    license: str | None = None


def _file(name: str, sha256: str, ref: str) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType

    return Component(
        type=ComponentType.FILE,
        name=name,
        bom_ref=ref,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)],
    )


def _licenses(value: str | None) -> list[Any]:
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before 11.5
        from cyclonedx.factory.license import LicenseFactory

    return [LicenseFactory().make_from_string(value)] if value else []


def build_sbom(inputs: SbomInputs) -> bytes:
    """The CycloneDX 1.6 JSON document (compact, keys sorted)."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    source = inputs.settings.source
    host_python = ".".join(str(n) for n in sys.version_info[:3])
    tools = [
        Component(
            type=ComponentType.APPLICATION,
            name="hatch-wasm-oci",
            version=__version__,
            purl=PackageURL("pypi", name="hatch-wasm-oci", version=__version__),
            bom_ref="tool:hatch-wasm-oci",
        ),
        Component(
            type=ComponentType.PLATFORM,
            name="cpython",
            version=host_python,
            description="the build's Python",
            bom_ref="tool:build-python",
        ),
    ]
    components: list[Any] = []
    properties: list[Any] = [Property(name="hatch-wasm-oci:source", value=_source_kind(source))]
    if isinstance(source, ComponentizePySource):
        from hatch_wasm_oci.project.componentize import compiler_version

        compiler = compiler_version()
        tools.append(
            Component(
                type=ComponentType.APPLICATION,
                name="componentize-py",
                version=compiler,
                purl=PackageURL("pypi", name="componentize-py", version=compiler),
                bom_ref="tool:componentize-py",
            )
        )
        guest = guest_python(inputs.wasm)
        components.append(
            Component(
                type=ComponentType.PLATFORM,
                name="cpython",
                version=guest,
                description="the Python interpreter componentize-py embeds",
                purl=PackageURL("generic", name="cpython", version=guest),
                bom_ref="cpython",
            )
        )
        for dist in bundled_distributions(source, inputs.root):
            purl = PackageURL("pypi", name=dist.name, version=dist.version)
            components.append(
                Component(
                    type=ComponentType.LIBRARY,
                    name=dist.name,
                    version=dist.version,
                    purl=purl,
                    bom_ref=str(purl),
                    licenses=_licenses(dist.license),
                    components=[_file(path, sha, f"{purl}#{path}") for path, sha in dist.files],
                )
            )
    elif isinstance(source, CommandSource):
        shown = source.command if isinstance(source.command, str) else json.dumps(source.command)
        properties.append(Property(name="hatch-wasm-oci:command", value=shown))
    if not isinstance(source, ComponentizePySource):
        listed = inputs.sources[:MAX_LISTED_FILES]
        components += [_file(path, sha, f"input:{path}") for path, sha in listed]
        if len(inputs.sources) > len(listed):
            properties.append(
                Property(name="hatch-wasm-oci:inputs-not-listed", value=str(len(inputs.sources)))
            )
    root = Component(
        type=ComponentType.APPLICATION,
        name=inputs.name,
        version=inputs.version,
        bom_ref="component",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=inputs.layer_digest[7:])],
        licenses=_licenses(inputs.license),
    )
    created = datetime.fromisoformat(inputs.created.replace("Z", "+00:00"))
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"hatch-wasm-oci:sbom:{inputs.layer_digest}"),
        metadata=BomMetaData(
            component=root,
            tools=ToolRepository(components=tools),
            timestamp=created,
            properties=properties,
        ),
        components=components,
    )
    bom.register_dependency(root, [c for c in components if c.type != ComponentType.FILE])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = JsonV1Dot6(bom).output_as_string()
    from hatch_wasm_oci.oci.config import canonical_json

    return canonical_json(json.loads(text))


def _source_kind(source: Any) -> str:
    if isinstance(source, ComponentizePySource):
        return "componentize-py"
    return "command" if isinstance(source, CommandSource) else "path"


def project_license(project: Mapping[str, Any]) -> str | None:
    """``[project] license`` when it is an SPDX expression string (PEP 639)."""
    value = project.get("license")
    return value if isinstance(value, str) and value.strip() else None
