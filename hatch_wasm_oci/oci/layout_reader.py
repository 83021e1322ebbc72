"""Reading and verifying OCI image layouts that hold Wasm artifacts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import ArtifactError, LayoutError
from hatch_wasm_oci.files.digest import file_digest
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.files.regular import FileInputError, open_regular, read_exactly
from hatch_wasm_oci.oci import media_types
from hatch_wasm_oci.oci.annotations import REF_NAME, annotation_problems
from hatch_wasm_oci.oci.artifact import LAYER_HEAD_SIZE, check_layer_head, parse_config_of
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import (
    LAYOUT_FILE,
    blob_relpath,
    read_index,
    read_layout_json,
)
from hatch_wasm_oci.oci.manifest import WasmManifest
from hatch_wasm_oci.oci.referrers import EMPTY_DATA, Referrer, looks_like_referrer
from hatch_wasm_oci.oci.tags import is_valid_tag

# Manifests and configs are small; a larger one is refused before it is read into memory.
MAX_DOCUMENT_SIZE = media_types.MAX_DOCUMENT_SIZE


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
            marker = read_layout_json(root, LAYOUT_FILE)
        except FileNotFoundError:
            raise LayoutError(f"{root}: not an OCI image layout (no oci-layout file)") from None
        if marker.get("imageLayoutVersion") != "1.0.0":
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

    def referrers(self, subject: str | None = None) -> list[tuple[Descriptor, Referrer]]:
        """Every referrer the index lists (of ``subject`` only, when given), in index order,
        each once; LayoutError if one cannot be read or parsed."""
        found: list[tuple[Descriptor, Referrer]] = []
        seen: set[str] = set()
        for desc in self.manifests():
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            referrer = self.referrer(desc)
            if referrer is not None and subject in (None, referrer.subject.digest):
                found.append((desc, referrer))
        return found

    def referrer(self, desc: Descriptor) -> Referrer | None:
        """The referrer ``desc`` names, or None when it is no referrer (has no ``subject``)."""
        doc = self.manifest(desc)
        if not looks_like_referrer(doc):
            return None
        try:
            return Referrer.from_json(doc)
        except ArtifactError as exc:
            raise LayoutError(f"{self.path}: referrer {desc.digest}: {exc}") from None

    def artifacts(self) -> list[Descriptor]:
        """The manifests of ``index.json`` that are not referrers, in index order."""
        return [d for d in self.manifests() if self.referrer(d) is None]

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
            data = read_exactly(path, descriptor.size)
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {descriptor.digest} is missing") from None
        except FileInputError as exc:
            raise LayoutError(str(exc)) from None
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
        return self.wasm_manifest(ref).layer

    def verify(self) -> None:
        """Check every rule and re-hash every blob; LayoutError lists each problem found."""
        problems = self.problems()
        if problems:
            raise LayoutError(f"{self.path}: " + "; ".join(problems))

    def wasm_manifest(self, ref: Descriptor | str) -> WasmManifest:
        """The manifest ``ref`` names, parsed by the artifact model."""
        return WasmManifest.parse(self.manifest_bytes(ref))

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
        first_entry: dict[str, int] = {}
        tags_of: dict[str, list[str]] = {}
        for desc in manifests:
            if REF_NAME in desc.annotations:
                tags_of.setdefault(desc.digest, []).append(desc.annotations[REF_NAME])
        for i, desc in enumerate(manifests):
            where = f"manifests[{i}]"
            tag = desc.annotations.get(REF_NAME)
            if tag is not None:
                if not is_valid_tag(tag):
                    problems.append(f"{where}: tag {tag[:200]!r} breaks the OCI tag grammar")
                elif tag in first_entry:
                    problems.append(
                        f"{where}: tag {tag!r} is listed twice "
                        f"(also manifests[{first_entry[tag]}]); readers disagree on which wins"
                    )
                first_entry.setdefault(tag, i)
            if desc.media_type != media_types.MANIFEST:
                problems.append(f"{where}: mediaType {desc.media_type!r} is not an image manifest")
            if desc.digest not in checked:
                checked[desc.digest] = self._problem(
                    desc, tags_of.get(desc.digest, []), rehash=True
                )
            if checked[desc.digest]:
                problems.append(f"{where} ({desc.digest}): {checked[desc.digest]}")
        return problems

    def artifact_problem(self, desc: Descriptor, tags: Sequence[str]) -> str | None:
        """How the artifact ``desc`` names breaks the Wasm OCI artifact rules (manifest,
        annotations against ``tags``, config, layer size and head), or None. Blobs are not
        re-hashed: push calls this before uploading (the registry checks digests)."""
        return self._problem(desc, tags, rehash=False)

    def _problem(self, desc: Descriptor, tags: Sequence[str], *, rehash: bool) -> str | None:
        try:
            referrer = self.referrer(desc)
            if referrer is not None:
                return self._referrer_problem(referrer, rehash=rehash)
            manifest = self.wasm_manifest(desc)
            values = annotation_problems(manifest.annotations, tags)
            if values:
                return "; ".join(values)
            parse_config_of(manifest, self.read_document(manifest.config))
            layer = manifest.layer
            self.check_blob(layer)
            with open_regular(self.blob_path(layer.digest)) as blob:
                check_layer_head(manifest, blob.read(LAYER_HEAD_SIZE))
            if rehash and self.blob_digest(layer) != layer.digest:
                return f"layer blob {layer.digest} does not match its digest"
        except LayoutError as exc:
            return str(exc).removeprefix(f"{self.path}: ")
        return None

    def _referrer_problem(self, referrer: Referrer, *, rehash: bool) -> str | None:
        """A referrer's subject must be a manifest of this layout; its blobs must be there."""
        listed = {d.digest for d in self.manifests()}
        if referrer.subject.digest not in listed:
            return (
                f"referrer ({referrer.artifact_type}): its subject {referrer.subject.digest} is "
                "not in the layout"
            )
        for blob in (referrer.config, *referrer.layers):
            self.check_blob(blob)
            if rehash and self.blob_digest(blob) != blob.digest:
                return f"blob {blob.digest} does not match its digest"
        if referrer.config.media_type == media_types.EMPTY and (
            self.read_document(referrer.config) != EMPTY_DATA
        ):
            return "the empty config is not {}"
        return None

    def blob_digest(self, descriptor: Descriptor) -> str:
        """The digest of a blob of any size, read once; LayoutError if it is missing, not a
        regular file, or not ``descriptor.size`` bytes (a larger one is refused unread)."""
        path = self.blob_path(descriptor.digest)
        try:
            return file_digest(path, descriptor.size)
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {descriptor.digest} is missing") from None
        except FileInputError as exc:
            raise LayoutError(str(exc)) from None

    def check_blob(self, descriptor: Descriptor) -> Path:
        """The path of a blob that is a regular file of ``descriptor.size`` bytes (not hashed);
        LayoutError otherwise. Readers of big blobs (push) call it before streaming."""
        path = self.blob_path(descriptor.digest)
        try:
            with open_regular(path) as fh:
                size = os.fstat(fh.fileno()).st_size
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {descriptor.digest} is missing") from None
        except FileInputError as exc:
            raise LayoutError(str(exc)) from None
        if size != descriptor.size:
            raise LayoutError(f"{path}: has {size} bytes, descriptor says {descriptor.size}")
        return path


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_json_object(data, what, media_types.MAX_DOCUMENT_SIZE)
    except JsonInputError as exc:
        raise LayoutError(str(exc)) from None


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
