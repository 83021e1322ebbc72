"""Reading and verifying OCI image layouts that hold Wasm artifacts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import LayoutError
from hatch_wasm_oci.files.digest import file_digest
from hatch_wasm_oci.oci import config as oci_config
from hatch_wasm_oci.oci.layout import (
    LAYOUT_FILE,
    REF_NAME,
    Descriptor,
    blob_relpath,
    read_index,
)
from hatch_wasm_oci.oci.tags import TAG_PATTERN

# Manifests and configs are small; a larger one is refused before it is read into memory.
MAX_DOCUMENT_SIZE = 4 << 20


class OciLayout:
    """An OCI image layout directory: its tags, manifests and blobs."""

    def __init__(self, path: Path, index: dict[str, Any]) -> None:
        self.path = path
        self.index = index

    @classmethod
    def open(cls, path: str | Path) -> OciLayout:
        """Open a layout directory; LayoutError if it is not one."""
        root = Path(path)
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a directory"
            raise LayoutError(f"{root}: {what}")
        try:
            marker = json.loads((root / LAYOUT_FILE).read_bytes())
        except FileNotFoundError:
            raise LayoutError(f"{root}: not an OCI image layout (no oci-layout file)") from None
        except (OSError, ValueError) as exc:
            raise LayoutError(f"{root}/oci-layout: unreadable: {exc}") from None
        if not isinstance(marker, dict) or marker.get("imageLayoutVersion") != "1.0.0":
            raise LayoutError(f"{root}/oci-layout: imageLayoutVersion is not 1.0.0")
        return cls(root, read_index(root))

    def manifests(self) -> list[Descriptor]:
        """Every manifest descriptor in ``index.json``, in index order."""
        out = []
        for i, entry in enumerate(self.index["manifests"]):
            try:
                out.append(Descriptor.from_json(entry))
            except LayoutError as exc:
                raise LayoutError(f"{self.path}/index.json: manifests[{i}]: {exc}") from None
        return out

    def tags(self) -> dict[str, Descriptor]:
        """Tag name -> manifest descriptor, from ``org.opencontainers.image.ref.name``."""
        return {d.annotations[REF_NAME]: d for d in self.manifests() if REF_NAME in d.annotations}

    def _resolve(self, ref: Descriptor | str) -> Descriptor:
        if isinstance(ref, Descriptor):
            return ref
        tags = self.tags()
        if ref in tags:
            return tags[ref]
        for d in self.manifests():
            if d.digest == ref:
                return d
        known = ", ".join(sorted(tags)) or "none"
        raise LayoutError(f"{self.path}: no tag or manifest {ref!r} (tags: {known})")

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives in this layout (it may not exist)."""
        return self.path / blob_relpath(digest)

    def read_document(self, descriptor: Descriptor) -> bytes:
        """The bytes of a small blob (manifest, config), checked against its descriptor."""
        if descriptor.size > MAX_DOCUMENT_SIZE:
            raise LayoutError(f"{descriptor.digest}: {descriptor.size} bytes is too large")
        path = self.blob_path(descriptor.digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {descriptor.digest} is missing") from None
        except OSError as exc:
            raise LayoutError(f"{path}: unreadable: {exc.strerror}") from None
        if len(data) != descriptor.size:
            raise LayoutError(
                f"{self.path}: blob {descriptor.digest} has {len(data)} bytes, "
                f"descriptor says {descriptor.size}"
            )
        if "sha256:" + hashlib.sha256(data).hexdigest() != descriptor.digest:
            raise LayoutError(f"{self.path}: blob {descriptor.digest} does not match its digest")
        return data

    def manifest_bytes(self, ref: Descriptor | str) -> bytes:
        """The exact bytes of a manifest, by tag, digest or descriptor."""
        return self.read_document(self._resolve(ref))

    def manifest(self, ref: Descriptor | str) -> dict[str, Any]:
        """A parsed manifest, by tag, digest or descriptor."""
        desc = self._resolve(ref)
        return _parse_json(self.read_document(desc), f"manifest {desc.digest}")

    def config(self, ref: Descriptor | str) -> dict[str, Any]:
        """The parsed Wasm config of a manifest, by tag, digest or descriptor."""
        return self.config_of(self.manifest(ref))

    def config_of(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The parsed Wasm config that an already parsed manifest points at."""
        desc = Descriptor.from_json(manifest.get("config"))
        return _parse_json(self.read_document(desc), f"config {desc.digest}")

    def layer(self, ref: Descriptor | str) -> Descriptor:
        """The single ``application/wasm`` layer of a manifest."""
        layers = self.manifest(ref).get("layers")
        if not isinstance(layers, list) or len(layers) != 1:
            raise LayoutError(f"{self.path}: manifest must have exactly one layer")
        return Descriptor.from_json(layers[0])

    def verify(self) -> None:
        """Check every rule and re-hash every blob; LayoutError lists each problem found."""
        problems = self.problems()
        if problems:
            raise LayoutError(f"{self.path}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every way this layout breaks the OCI layout or Wasm artifact rules (empty if none)."""
        problems: list[str] = []
        try:
            manifests = self.manifests()
        except LayoutError as exc:
            return [str(exc)]
        if not manifests:
            problems.append("index.json lists no manifests")
        checked: dict[str, str | None] = {}
        for i, desc in enumerate(manifests):
            where = f"manifests[{i}]"
            tag = desc.annotations.get(REF_NAME)
            if tag is not None and not TAG_PATTERN.fullmatch(tag):
                problems.append(f"{where}: tag {tag!r} breaks the OCI tag grammar")
            if desc.media_type != oci_config.MANIFEST_MEDIA_TYPE:
                problems.append(f"{where}: mediaType {desc.media_type!r} is not an image manifest")
            if desc.digest not in checked:
                checked[desc.digest] = self._manifest_problem(desc)
            if checked[desc.digest]:
                problems.append(f"{where} ({desc.digest}): {checked[desc.digest]}")
        return problems

    def _manifest_problem(self, desc: Descriptor) -> str | None:
        try:
            manifest = _parse_json(self.read_document(desc), "manifest")
            if manifest.get("schemaVersion") != 2:
                return "schemaVersion is not 2"
            if manifest.get("mediaType") != oci_config.MANIFEST_MEDIA_TYPE:
                return f"manifest mediaType is not {oci_config.MANIFEST_MEDIA_TYPE}"
            config_desc = Descriptor.from_json(manifest.get("config"))
            if config_desc.media_type != oci_config.CONFIG_MEDIA_TYPE:
                wanted = oci_config.CONFIG_MEDIA_TYPE
                return f"config mediaType {config_desc.media_type!r} is not {wanted}"
            layers = manifest.get("layers")
            if not isinstance(layers, list) or len(layers) != 1:
                return "a Wasm artifact has exactly one layer"
            layer = Descriptor.from_json(layers[0])
            if layer.media_type != oci_config.LAYER_MEDIA_TYPE:
                return f"layer mediaType {layer.media_type!r} is not {oci_config.LAYER_MEDIA_TYPE}"
            config = _parse_json(self.read_document(config_desc), "config")
            problem = _config_problem(config, [layer.digest])
            if problem:
                return f"config {config_desc.digest}: {problem}"
            path = self.blob_path(layer.digest)
            if not path.is_file():
                return f"layer blob {layer.digest} is missing"
            size = path.stat().st_size
            if size != layer.size:
                return f"layer blob {layer.digest} has {size} bytes, descriptor says {layer.size}"
            if file_digest(path) != layer.digest:
                return f"layer blob {layer.digest} does not match its digest"
        except LayoutError as exc:
            return str(exc).removeprefix(f"{self.path}: ")
        except OSError as exc:
            return f"unreadable: {exc}"
        return None


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise LayoutError(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{what} is not a JSON object")
    return doc


def _config_problem(config: dict[str, Any], layer_digests: list[str]) -> str | None:
    if config.get("architecture") != oci_config.ARCHITECTURE:
        return "architecture is not 'wasm'"
    os_name = config.get("os")
    if os_name not in ("wasip1", "wasip2"):
        return f"os {os_name!r} is neither wasip1 nor wasip2"
    if config.get("layerDigests") != layer_digests:
        return "layerDigests do not list the manifest's layers"
    if not isinstance(config.get("created"), str):
        return "created is missing"
    component = config.get("component")
    if os_name == "wasip2":
        if not isinstance(component, dict):
            return "a wasip2 config must have a component object"
        for key in ("imports", "exports"):
            names = component.get(key)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return f"component.{key} is not a list of names"
        if "target" in component and not isinstance(component["target"], str):
            return "component.target is not a string"
    return None


def find_layouts(root: Path) -> list[Path]:
    """Every OCI layout directory at or below ``root`` (blob stores are not searched)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if LAYOUT_FILE in filenames and "index.json" in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)
