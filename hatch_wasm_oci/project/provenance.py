"""Where a component came from: an in-toto Statement v1 with a SLSA v1 provenance predicate.

The statement names the component's manifest as its subject and records the builder
(hatch-wasm-oci and its version), the build's inputs (the source tree digest, every
``wkg.lock`` digest, the componentize-py compile cache key and what that key covers), the
toolchain versions and SOURCE_DATE_EPOCH. Nothing in it reads the wall clock, so equal inputs
give equal bytes.

It is unsigned. Signing wraps the same statement bytes in a DSSE envelope
(``payloadType`` ``application/vnd.in-toto+json``): :func:`provenance_document` takes a
``sign`` hook for that, and the referrer keeps ``artifactType`` ``application/vnd.in-toto+json``
whichever the layer is, so a signer can be added without changing the format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci import __version__
from hatch_wasm_oci.files.digest import file_digest
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.config import canonical_json
from hatch_wasm_oci.project.settings import CommandSource, ComponentizePySource, WasmOciSettings

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://pypi.org/project/hatch-wasm-oci/#build-v1"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
#: What the componentize-py compile cache key covers (see ``componentize.input_key``).
KEY_COVERS = (
    "componentize-py version",
    "componentize-py arguments (wit-path, world, python-path, stub-wasi, args, app)",
    "build Python version (X.Y)",
    "every WIT file",
    "every file under the python-path (hidden directories, __pycache__, bytecode skipped)",
    "the name and version of every distribution installed in the build environment",
)

Signer = Callable[[bytes], Sequence[Mapping[str, str]]]
"""A signing hook: given the DSSE pre-authentication encoding of the statement, the envelope's
``signatures`` (``{"keyid": ..., "sig": <base64>}``)."""


@dataclass(frozen=True)
class ProvenanceInputs:
    """What the statement records."""

    subject_name: str
    manifest_digest: str
    settings: WasmOciSettings
    root: Path
    sources: Sequence[tuple[str, str]]
    compile_key: str | None
    source_date_epoch: str | None
    created: str
    exclude: Iterable[Path] = ()
    #: ``name==version`` of each distribution of the build environment the compile cache key
    #: covers (so ``reproduce REF`` can name the ones that differ, not only the key).
    distributions: Sequence[str] = ()


def tree_digest(sources: Sequence[tuple[str, str]]) -> str:
    """One SHA-256 over ``(path, sha256)`` pairs in order: the source tree's digest."""
    digest = hashlib.sha256()
    for path, sha in sources:
        digest.update(f"{len(path)}:{path}:{sha}\n".encode())
    return digest.hexdigest()


def lock_files(settings: WasmOciSettings, root: Path) -> list[Path]:
    """The ``wkg.lock`` beside each WIT directory of the build, existing ones only."""
    from hatch_wasm_oci.wit.lock import LOCK_FILE_NAME

    source = settings.source
    wit_dirs = list(source.wit_paths) if isinstance(source, ComponentizePySource) else ["wit"]
    found: dict[Path, None] = {}
    for wit in wit_dirs:
        lock = (root / wit).resolve().parent / LOCK_FILE_NAME
        if lock.is_file():
            found[lock] = None
    return list(found)


def _toolchain(settings: WasmOciSettings) -> dict[str, str]:
    versions = {
        "hatch-wasm-oci": __version__,
        "python": ".".join(str(n) for n in sys.version_info[:3]),
    }
    if isinstance(settings.source, ComponentizePySource):
        from hatch_wasm_oci.project.componentize import compiler_version

        versions["componentize-py"] = compiler_version()
    return versions


def _source_parameters(settings: WasmOciSettings) -> dict[str, Any]:
    source = settings.source
    if isinstance(source, ComponentizePySource):
        return {
            "componentize-py": {
                "app": source.app,
                "world": source.world,
                "wit-path": list(source.wit_paths),
                "python-path": list(source.python_path),
                "stub-wasi": source.stub_wasi,
                "args": list(source.args),
            }
        }
    if isinstance(source, CommandSource):
        command = source.command if isinstance(source.command, str) else list(source.command)
        return {"command": command, "path": str(source.path)}
    return {"path": str(source.path)}


def statement(inputs: ProvenanceInputs) -> dict[str, Any]:
    """The in-toto Statement v1 (a SLSA v1 provenance predicate) as a JSON object."""
    root = Path(inputs.root)
    dependencies: list[dict[str, Any]] = [
        {"name": "source-tree", "digest": {"sha256": tree_digest(inputs.sources)}}
    ]
    for lock in lock_files(inputs.settings, root):
        name = (
            lock.relative_to(root.resolve()).as_posix()
            if lock.is_relative_to(root.resolve())
            else lock.name
        )
        dependencies.append({"name": name, "digest": {"sha256": file_digest(lock)[7:]}})
    for tool, version in sorted(_toolchain(inputs.settings).items()):
        kind = "generic" if tool == "python" else "pypi"
        name = "cpython" if tool == "python" else tool
        dependencies.append({"uri": f"pkg:{kind}/{name}@{version}", "name": tool})
    internal: dict[str, Any] = {"SOURCE_DATE_EPOCH": inputs.source_date_epoch}
    if inputs.compile_key is not None:
        internal["compileCacheKey"] = {"sha256": inputs.compile_key, "covers": list(KEY_COVERS)}
        internal["buildEnvironment"] = sorted(inputs.distributions)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": inputs.subject_name, "digest": {"sha256": inputs.manifest_digest[7:]}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": _source_parameters(inputs.settings),
                    "target": inputs.settings.target,
                    "tags": list(inputs.settings.tags),
                },
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": f"pkg:pypi/hatch-wasm-oci@{__version__}",
                    "version": _toolchain(inputs.settings),
                },
                "metadata": {"created": inputs.created},
            },
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signer signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def provenance_document(inputs: ProvenanceInputs, sign: Signer | None = None) -> tuple[str, bytes]:
    """``(layer media type, bytes)``: the bare statement (unsigned, today), or with ``sign``
    a DSSE envelope holding it."""
    payload = canonical_json(statement(inputs))
    if sign is None:
        return mt.PROVENANCE, payload
    envelope = {
        "payloadType": mt.PROVENANCE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [dict(s) for s in sign(pae(mt.PROVENANCE, payload))],
    }
    return DSSE_ENVELOPE, json.dumps(envelope, sort_keys=True).encode()
