"""What a TARGET names: a ``.wasm`` file, an OCI layout (``DIR`` or ``DIR:TAG``) or a registry
reference (``REPO:TAG``, ``REPO@sha256:...``), resolved to one verified Wasm binary."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.errors import ArtifactError, ComponentError, LayoutError
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.runtime.engine import cache_root
from hatch_wasm_oci.runtime.store import ContentStore, RegistryOptions
from hatch_wasm_oci.wasm.binary import WasmKind, read_wasm

MAX_WASM_SIZE = 1 << 30


@dataclass(frozen=True)
class Artifact:
    """One Wasm binary to run: its bytes, their digest, what it is, and where it came from."""

    source: str
    wasm: bytes
    digest: str
    kind: WasmKind
    imports: tuple[str, ...]
    exports: tuple[str, ...]


def _read(path: Path, source: str, expected: str | None = None) -> Artifact:
    info = read_wasm(path)
    if info.kind is WasmKind.WIT_PACKAGE:
        raise ComponentError(f"{source}: is a WIT package (types only), not a component to run")
    if info.size > MAX_WASM_SIZE:
        raise ComponentError(f"{source}: {info.size} bytes is larger than 1 GiB")
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise ComponentError(f"{source}: the layer hashes to {digest}, not {expected}")
    return Artifact(source, data, digest, info.kind, info.imports, info.exports)


def _from_layout(directory: Path, tag: str | None, source: str) -> Artifact:
    layout = OciLayout.open(directory)
    if tag is None:
        digests = {d.digest for d in layout.artifacts()}
        tags = layout.tags()
        if len(digests) == 1:
            tag = next(iter(digests))
        elif "latest" in tags:
            tag = "latest"
        else:
            known = ", ".join(sorted(tags)) or "none"
            raise LayoutError(f"{source}: several manifests; name one as {directory}:TAG ({known})")
    try:
        layer = layout.wasm_manifest(tag).layer
    except ArtifactError as exc:
        raise ComponentError(f"{source}: not a Wasm OCI artifact: {exc}") from None
    return _read(layout.blob_path(layer.digest), source, expected=layer.digest)


def _layout_and_tag(target: str) -> tuple[Path, str | None] | None:
    path = Path(target)
    if path.is_dir():
        return path, None
    directory, sep, tag = target.rpartition(":")
    if sep and directory and Path(directory).is_dir() and "/" not in tag:
        return Path(directory), tag
    return None


def local_path(target: str) -> Path | None:
    """The ``.wasm`` file or OCI layout directory ``target`` names on this machine (``DIR:TAG``
    names DIR); None for a registry reference or nothing that exists."""
    path = Path(target)
    if path.is_file():
        return path
    layout = _layout_and_tag(target)
    return None if layout is None else layout[0]


def resolve(target: str | os.PathLike[str], options: RegistryOptions | None = None) -> Artifact:
    """The verified binary ``target`` names; a registry reference goes through the store."""
    text = os.fspath(target)
    path = Path(text)
    if path.is_file():
        return _read(path, text)
    layout = _layout_and_tag(text)
    if layout is not None:
        return _from_layout(layout[0], layout[1], text)
    if "/" not in text or text.startswith((".", "/", "~")) or path.suffix == ".wasm":
        raise ComponentError(f"{text}: no such file, OCI layout or registry reference")
    _refuse_local_path(text)
    root = cache_root()
    if root is not None:
        return _from_store(ContentStore(root / "store"), text, options)
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-store-") as scratch:
        return _from_store(ContentStore(Path(scratch)), text, options)


def _registry_like(component: str) -> bool:
    """Whether the first component of a reference can be a registry host (as Docker reads it)."""
    return "." in component or ":" in component or component == "localhost"


def _refuse_local_path(text: str) -> None:
    """A reference without a registry host whose first component is a local path is a typo'd
    path, not a Docker Hub repository: say so instead of pulling."""
    first = text.split("/", 1)[0]
    if _registry_like(first) or not Path(first).exists():
        return
    existing = Path(first)
    for part in Path(text.split("@", 1)[0]).parts[1:]:
        if not (existing / part).exists():
            break
        existing = existing / part
    raise ComponentError(
        f"{text}: no such file or OCI layout ({existing}/ exists; a registry reference "
        "starts with its host, e.g. localhost:5000/REPO:TAG)"
    )


def _from_store(store: ContentStore, text: str, options: RegistryOptions | None) -> Artifact:
    stored = store.fetch(text, options or RegistryOptions())
    return _read(stored.wasm, f"{text}@{stored.digest}", expected=stored.layer.digest)
