"""Writing OCI image layouts: content-addressed blobs, ``index.json`` tags, optional ``.tar``.

Nothing half-written is ever left behind: a new layout is assembled in a temporary directory
beside its destination and renamed into place; adding to an existing layout writes each blob
through a temporary file and replaces ``index.json`` atomically, so the old tags stay valid
until the new index is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hatch_wasm_oci.errors import LayoutError, WasmOciError
from hatch_wasm_oci.files.atomic import atomic_write, remove_stale, replacing, staging_prefix
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.files.lock import FileLock, lock_for
from hatch_wasm_oci.files.regular import FileInputError, open_regular, read_regular
from hatch_wasm_oci.oci import config as oci_config
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.annotations import (
    AUTHORS,
    CREATED,
    REF_NAME,
    TITLE,
    VERSION,
    annotation_problems,
    merge_embedded,
    metadata_annotations,
    version_hint,
)
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.manifest import WasmManifest
from hatch_wasm_oci.oci.tags import validate_tag

LAYOUT_FILE = "oci-layout"
# Blobs being written are ``blobs/sha256/.incoming.PID.RANDOM`` until renamed to their digest.
INCOMING = "incoming"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
# The lock writers of an existing layout hold inside it (hidden: never archived or listed).
INSIDE_LOCK = ".hatch-wasm-oci-lock"


@dataclass(frozen=True)
class PackResult:
    """What ``pack`` wrote: the layout directory, its three descriptors, the tags, the tar."""

    layout: Path
    manifest: Descriptor
    config: Descriptor
    layer: Descriptor
    tags: tuple[str, ...]
    tar: Path | None
    warnings: tuple[str, ...] = ()


def blob_relpath(digest: str) -> Path:
    """``blobs/<algorithm>/<hex>`` for a digest; refuses anything but a well-formed sha256."""
    algorithm, _, hexpart = digest.partition(":")
    if (
        algorithm != "sha256"
        or len(hexpart) != 64
        or not all(c in "0123456789abcdef" for c in hexpart)
    ):
        raise LayoutError(f"unsupported or malformed digest {digest!r}")
    return Path("blobs", algorithm, hexpart)


def read_layout_json(layout_dir: Path, name: str) -> dict[str, Any]:
    """A JSON object file of a layout (``index.json``, ``oci-layout``): a regular file of at
    most 4 MiB, bounded in depth. FileNotFoundError propagates; anything else is a LayoutError."""
    path = layout_dir / name
    try:
        data = read_regular(path, mt.MAX_DOCUMENT_SIZE)
        return parse_json_object(data, str(path), mt.MAX_DOCUMENT_SIZE)
    except (FileInputError, JsonInputError) as exc:
        raise LayoutError(str(exc)) from None


def read_index(layout_dir: Path) -> dict[str, Any]:
    """The parsed ``index.json`` of a layout (LayoutError if missing or not an OCI index)."""
    try:
        index = read_layout_json(layout_dir, "index.json")
    except FileNotFoundError:
        raise LayoutError(f"{layout_dir}: not an OCI image layout (no index.json)") from None
    if not isinstance(index.get("manifests"), list):
        raise LayoutError(f"{layout_dir}/index.json: not an OCI image index")
    return index


def _directory_mode() -> int:
    """0777 less the process umask: the mode ``mkdir`` would give (0755 under umask 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask


class LayoutWriter:
    """Adds blobs and tags to a layout directory; nothing shows until ``commit()``.

    Use as a context manager: leaving the block without ``commit()`` (or with an exception)
    removes everything this writer added.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self._entries: dict[str, Descriptor] = {}
        self._untagged: dict[str, Descriptor] = {}
        self._added: list[Path] = []
        self._committed = False
        self._previous_index: bytes | None = None
        parent = self.out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LayoutError(f"{self.out}: cannot create: {exc.strerror}") from None
        self._locks: list[FileLock] = []
        try:
            self._take_locks()
            self._open()
        except BaseException:
            self._release_locks()
            raise

    def _take_locks(self) -> None:
        """Every writer of this layout holds its locks from here to commit or abort: two packs
        adding tags take turns instead of losing one, and whatever temporary entries exist
        now belong to dead writers, in this PID namespace or any other.

        The lock beside the layout guards its creation; an existing layout also has one inside,
        so that a writer that may not write the parent (a volume mounted in a read-only root)
        can still add to it. Always taken in that order: no deadlock.
        """
        beside = lock_for(self.out)
        try:
            beside.acquire()
            self._locks.append(beside)
        except OSError as exc:
            if not (self.out / LAYOUT_FILE).is_file():
                raise LayoutError(f"{self.out}: cannot lock: {exc.strerror}") from None
        if (self.out / LAYOUT_FILE).is_file():
            inside = FileLock(self.out / INSIDE_LOCK, str(self.out))
            try:
                inside.acquire()
            except OSError as exc:
                raise LayoutError(f"{self.out}: cannot lock: {exc.strerror}") from None
            self._locks.append(inside)

    def _release_locks(self) -> None:
        while self._locks:
            self._locks.pop().release()

    def _open(self) -> None:
        parent = self.out.parent
        remove_stale(parent, f"{self.out.name}.tar", older_than=None)
        if self.out.exists():
            if not (self.out / LAYOUT_FILE).is_file():
                raise LayoutError(f"{self.out}: exists and is not an OCI image layout")
            self._existing = True
            self._root = self.out
            self._index = read_index(self.out)
            for directory, name in (
                (self.out, "index.json"),
                (self.out, LAYOUT_FILE),
                (self.out / "blobs" / "sha256", INCOMING),
            ):
                remove_stale(directory, name, older_than=None)
        else:
            self._existing = False
            try:
                remove_stale(parent, self.out.name, older_than=None)
                self._root = Path(
                    tempfile.mkdtemp(prefix=staging_prefix(self.out.name), dir=parent)
                )
                os.chmod(self._root, _directory_mode())  # mkdtemp's 0700 hides dist/ from others
            except OSError as exc:
                raise LayoutError(f"{self.out}: cannot create: {exc.strerror}") from None
            self._index = {
                "schemaVersion": 2,
                "mediaType": oci_config.INDEX_MEDIA_TYPE,
                "manifests": [],
            }

    def __enter__(self) -> LayoutWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._committed:
                self.abort()
        finally:
            self._release_locks()

    def add_blob_from(
        self, source: BinaryIO, expected_digest: str | None = None
    ) -> tuple[str, int]:
        """Stream ``source`` into the blob store in one pass that copies and hashes.

        Returns ``(digest, size)``; with ``expected_digest`` a mismatch raises LayoutError and
        keeps nothing.
        """
        blobs = self._root / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        fd, tmp_name = tempfile.mkstemp(prefix=staging_prefix(INCOMING), dir=blobs)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as sink:
                while True:
                    n = source.readinto(view)  # type: ignore[attr-defined]
                    if not n:
                        break
                    chunk = view[:n]
                    hasher.update(chunk)
                    sink.write(chunk)
                    size += n
            digest = "sha256:" + hasher.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise LayoutError(f"blob digest mismatch: expected {expected_digest}, got {digest}")
            self._place(tmp, digest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest, size

    def add_blob(self, data: bytes) -> tuple[str, int]:
        """Store a small in-memory blob (config, manifest); returns ``(digest, size)``."""
        return self.add_blob_from(io.BytesIO(data))

    def _place(self, tmp: Path, digest: str) -> None:
        final = self._root / blob_relpath(digest)
        if final.exists():
            tmp.unlink()
            return
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        self._added.append(final)

    def tag(self, tag: str, manifest: Descriptor) -> None:
        """Point ``tag`` at a manifest already stored with ``add_blob``."""
        self._entries[validate_tag(tag)] = manifest

    def add_untagged(self, manifest: Descriptor) -> None:
        """List a manifest already stored with ``add_blob`` in ``index.json`` without a tag."""
        self._untagged[manifest.digest] = manifest

    def blob_path(self, digest: str) -> Path:
        """Where a blob this writer stored is, before and after ``commit()``."""
        return (self.out if self._committed else self._root) / blob_relpath(digest)

    def commit(self) -> None:
        """Write ``oci-layout`` and the merged ``index.json``; make a new layout appear."""
        kept = [
            entry
            for entry in self._index["manifests"]
            if not (
                isinstance(entry, dict)
                and (entry.get("annotations") or {}).get(REF_NAME) in self._entries
            )
        ]
        added = [
            Descriptor(d.media_type, d.digest, d.size, {**d.annotations, REF_NAME: tag}).to_json()
            for tag, d in sorted(self._entries.items())
        ]
        index = dict(self._index)
        listed = {entry.get("digest") for entry in kept if isinstance(entry, dict)}
        untagged = [d.to_json() for digest, d in self._untagged.items() if digest not in listed]
        index["manifests"] = kept + added + untagged
        if self._existing:
            self._previous_index = read_regular(self._root / "index.json", mt.MAX_DOCUMENT_SIZE)
        atomic_write(self._root / LAYOUT_FILE, oci_config.canonical_json(LAYOUT_VERSION))
        atomic_write(self._root / "index.json", oci_config.canonical_json(index))
        if not self._existing:
            try:
                os.rename(self._root, self.out)
            except OSError as exc:
                self.abort()
                raise LayoutError(
                    f"{self.out}: cannot move the new layout into place: {exc}"
                ) from None
        self._committed = True

    def rollback(self) -> None:
        """Undo a ``commit()`` just made: a new layout is removed, an existing one gets its
        previous ``index.json`` back and loses the blobs this writer added."""
        if not self._committed:
            self.abort()
            return
        import shutil

        if not self._existing:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        if self._previous_index is not None:
            atomic_write(self.out / "index.json", self._previous_index)
        self._committed = False
        self.abort()

    def abort(self) -> None:
        """Remove everything this writer added."""
        if self._committed:
            return
        if not self._existing:
            import shutil

            shutil.rmtree(self._root, ignore_errors=True)
        else:
            for path in self._added:
                path.unlink(missing_ok=True)
        self._added.clear()


def pack(
    wasm: Path,
    out: Path,
    *,
    tags: Iterable[str] = ("latest",),
    annotations: Mapping[str, str] | None = None,
    target: str | None = None,
    created: str | None = None,
    author: str | None = None,
    tar: bool = False,
) -> PackResult:
    """Write ``wasm`` as a Wasm OCI artifact into the layout ``out`` (created or extended).

    The config is derived from the binary itself (imports, exports, module or component);
    ``created`` defaults to SOURCE_DATE_EPOCH or a fixed time, so equal inputs give equal
    digests. With ``tar`` the layout is also written as ``<out>.tar``.
    """
    from hatch_wasm_oci.wasm.binary import read_wasm

    wasm, out = Path(wasm), Path(out)
    tag_list = [validate_tag(t) for t in tags]
    if not tag_list:
        raise WasmOciError("at least one tag is needed")
    info = read_wasm(wasm)
    stamp = created or oci_config.created_timestamp()
    # The component's own metadata first (as wkg publish maps it); explicit values win.
    embedded = {CREATED: stamp, **metadata_annotations(info.metadata)}
    manifest_annotations, warnings = merge_embedded(embedded, annotations or {})
    problems = annotation_problems(manifest_annotations, tag_list)
    if problems:
        version = manifest_annotations.get(VERSION)
        hint = "" if version is None else version_hint(
            version, tag_list, embedded=VERSION not in (annotations or {})
        )
        raise WasmOciError("; ".join(problems) + hint)
    if target is not None:
        oci_config.validate_target(target)
    if author is None:
        author = manifest_annotations.get(AUTHORS)

    try:
        source = open_regular(wasm)
    except (OSError, FileInputError) as exc:
        raise WasmOciError(
            f"{wasm}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        with source, LayoutWriter(out) as writer:
            layer_digest, layer_size = writer.add_blob_from(source)
            if layer_size != info.size:
                raise WasmOciError(f"{wasm}: changed while it was being packed")
            layer = Descriptor(mt.WASM_LAYER, layer_digest, layer_size, {TITLE: wasm.name})
            config_data = oci_config.config_for(
                info, [layer_digest], created=stamp, author=author, target=target
            ).to_bytes()
            config_digest, config_size = writer.add_blob(config_data)
            config = Descriptor(mt.WASM_CONFIG, config_digest, config_size)
            manifest_data = WasmManifest(config, layer, manifest_annotations).to_bytes()
            manifest_digest, manifest_size = writer.add_blob(manifest_data)
            manifest = Descriptor(mt.MANIFEST, manifest_digest, manifest_size)
            for tag in tag_list:
                writer.tag(tag, manifest)
            writer.commit()
            tar_path = None
            if tar:
                try:
                    tar_path = write_tar(out, stamp)
                except BaseException:
                    writer.rollback()  # a layout without the tar asked for is half the output
                    raise
    except OSError as exc:
        # The wasm was opened and framed above: what fails here is writing the layout or tar.
        raise LayoutError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return PackResult(out, manifest, config, layer, tuple(tag_list), tar_path, tuple(warnings))


def _layout_entries(layout_dir: Path) -> list[tuple[Path, bool]]:
    """``(path, is_directory)`` for what a layout holds, sorted, hidden entries left out.

    Symlinks are not followed: a layout holds directories and regular files only, and a
    FIFO, device or symlink in one is a LayoutError (it would hang the tar, or copy what it
    points at into the archive).
    """
    import stat

    found: list[tuple[Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(layout_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in [*dirnames, *filenames]:
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise LayoutError(
                    f"{path}: not a directory or regular file; refusing to archive it"
                )
            found.append((path, stat.S_ISDIR(mode)))
    return sorted(found)


def write_tar(layout_dir: Path, created: str | None = None) -> Path:
    """Write ``<layout_dir>.tar``: the layout's files in sorted order with fixed owners and times.

    ``skopeo copy oci-archive:`` and ``oras`` read it. Written to a temporary file first.
    """
    import tarfile
    from datetime import datetime

    mtime = 0
    if created:
        with contextlib.suppress(ValueError):
            mtime = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    target = Path(f"{layout_dir}.tar")
    with (
        replacing(target) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path, is_dir in _layout_entries(layout_dir):
            info = tarfile.TarInfo(path.relative_to(layout_dir).as_posix())
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
                continue
            try:
                fh = open_regular(path)
            except FileInputError as exc:
                raise LayoutError(str(exc)) from None
            with fh:
                info.mode = 0o644
                info.size = os.fstat(fh.fileno()).st_size
                archive.addfile(info, fh)
    return target
