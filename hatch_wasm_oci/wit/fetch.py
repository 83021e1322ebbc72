"""``wit/deps/`` and ``wkg.lock`` from a project's WIT, the way ``wkg fetch`` makes them.

wasm-tools names each foreign package the WIT needs and does not have; each is resolved (the
lock's entry, else the highest registry version matching the WIT's requirement), pulled or
taken from the content cache, and offered to wasm-tools as an encoded package until the WIT
resolves. Every package of the resolution but the root is then printed as WIT text into
``deps/<ns>-<name>-<version>/package.wit``; the packages taken from the registry go to the
lock. ``deps/`` is staged beside itself and swapped in whole: an error leaves it as it was.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hatch_wasm_oci.files.atomic import remove_stale, staging_prefix
from hatch_wasm_oci.wit import source, wasm_tools
from hatch_wasm_oci.wit.cache import BlobCache
from hatch_wasm_oci.wit.config import WasmPkgConfig, config_path
from hatch_wasm_oci.wit.discovery import OciLocation, locate
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.lock import LOCK_FILE_NAME, LockedPackage, read_lock, write_lock
from hatch_wasm_oci.wit.names import PackageName

DEPS_DIR = "deps"
MAX_ROUNDS = 200

Log = Callable[[str], None]


class Mode(enum.Enum):
    """How the lock is used."""

    FETCH = "fetch"  # locked entries are kept, new requirements resolved, the lock rewritten
    UPDATE = "update"  # the lock is ignored and rewritten
    LOCKED = "locked"  # every needed package must be in the lock; the lock is not written


@dataclass(frozen=True)
class FetchResult:
    """What a fetch wrote."""

    root: PackageName
    locked: tuple[LockedPackage, ...]
    written: tuple[PackageName, ...]
    lock_path: Path
    lock_written: bool


@dataclass
class _Resolver:
    config: WasmPkgConfig
    cache: BlobCache
    lock: dict[tuple[str, str | None, str], LockedPackage]
    lock_path: Path
    mode: Mode
    ca_file: Path | None
    environ: Mapping[str, str]
    log: Log
    locations: dict[str, OciLocation] = field(default_factory=dict)

    def location(self, registry: str, package: PackageName) -> OciLocation:
        mapping = self.config.mapping_for(package)
        metadata = mapping.metadata if mapping is not None else None
        key = registry if metadata is None else f"{registry}\0{package.ref}"
        if key not in self.locations:
            self.locations[key] = locate(
                registry, self.config, metadata=metadata, ca_file=self.ca_file, log=self.log
            )
        return self.locations[key]

    def registry(self, wanted: PackageName) -> str:
        registry = self.config.registry_for(wanted)
        if registry is None:
            raise WitError(
                f"unknown package {wanted}: no registry serves namespace "
                f"'{wanted.namespace}' (set namespace_registries.{wanted.namespace} or "
                f"default_registry in {config_path(self.environ)} or the wit-dependencies table)"
            )
        return registry

    def resolve(self, wanted: PackageName) -> tuple[LockedPackage, Path]:
        """The lock entry and cached blob for the WIT reference ``wanted``."""
        registry = self.registry(wanted)
        requirement = str(wanted.requirement)
        locked = None
        if self.mode is not Mode.UPDATE:
            locked = self.lock.get((wanted.ref, registry, requirement))
        if locked is not None:
            return locked, self._locked_blob(locked, registry)
        if self.mode is Mode.LOCKED:
            raise WitError(
                f"{wanted}: {self.lock_path.name} has no entry for {wanted.ref} {requirement} "
                f"from {registry}: the lock disagrees with the WIT (run `hatch-wasm-oci wit "
                "fetch` to update it)"
            )
        base = PackageName(wanted.namespace, wanted.name)
        location = self.location(registry, base)
        versions = source.list_versions(location, base, ca_file=self.ca_file, environ=self.environ)
        chosen = wanted.requirement.highest(versions)
        if chosen is None:
            available = ", ".join(map(str, versions)) or "none"
            raise WitError(
                f"{wanted}: no version of {wanted.ref} at {location.reference(base).repo_ref} "
                f"satisfies {requirement} (available: {available})"
            )
        self.log(f"Fetching {wanted.ref}@{chosen} from {registry}")
        blob, digest = source.pull_package(
            location,
            base,
            str(chosen),
            self.cache,
            expect_digest=None,
            ca_file=self.ca_file,
            environ=self.environ,
        )
        return LockedPackage(wanted.ref, registry, requirement, str(chosen), digest), blob

    def _locked_blob(self, locked: LockedPackage, registry: str) -> Path:
        what = f"{locked.name}@{locked.version}"
        blob = self.cache.get(locked.digest, what)
        if blob is not None:
            return blob
        base = PackageName.parse(locked.name)
        self.log(f"Fetching {what} from {registry} (locked)")
        blob, _ = source.pull_package(
            self.location(registry, base),
            base,
            locked.version,
            self.cache,
            expect_digest=locked.digest,
            ca_file=self.ca_file,
            environ=self.environ,
        )
        return blob


def _copy_root(wit_dir: Path, work: Path) -> None:
    """The WIT files of the root package (the top level of ``wit_dir``, as wkg parses it)."""
    work.mkdir(parents=True)
    found = False
    for entry in sorted(wit_dir.iterdir()):
        if entry.suffix == ".wit" and entry.is_file():
            shutil.copyfile(entry, work / entry.name)
            found = True
    if not found:
        raise WitError(f"{wit_dir}: no .wit files (the project's own package goes there)")
    (work / DEPS_DIR).mkdir()


def _swap_in(staged: Path, destination: Path) -> None:
    """Replace ``destination`` by ``staged`` (a sibling directory), old content kept on error."""
    holder = Path(tempfile.mkdtemp(prefix=staging_prefix(destination.name), dir=destination.parent))
    try:
        old = holder / "old"
        if destination.exists() or destination.is_symlink():
            os.replace(destination, old)
        try:
            os.replace(staged, destination)
        except OSError:
            if old.exists():
                os.replace(old, destination)
            raise
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def fetch_dependencies(
    wit_dir: Path,
    *,
    config: WasmPkgConfig,
    cache: BlobCache,
    mode: Mode = Mode.FETCH,
    lock_path: Path | None = None,
    ca_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    log: Log = print,
) -> FetchResult:
    """Resolve the foreign packages of ``wit_dir``'s WIT, write ``wit_dir/deps/`` and the lock
    (``wkg.lock`` beside ``wit_dir`` unless ``lock_path``)."""
    wit_dir = Path(wit_dir)
    if not wit_dir.is_dir():
        raise WitError(f"{wit_dir} is not a directory")
    lock_path = Path(lock_path) if lock_path else wit_dir.parent / LOCK_FILE_NAME
    existing = read_lock(lock_path)
    if mode is Mode.LOCKED and not lock_path.exists():
        raise WitError(f"{lock_path} does not exist (run `hatch-wasm-oci wit fetch`)")
    resolver = _Resolver(
        config,
        cache,
        {(e.name, e.registry, e.requirement): e for e in existing},
        lock_path,
        mode,
        ca_file,
        os.environ if environ is None else environ,
        log,
    )
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-wit-") as scratch:
        root_dir = Path(scratch) / "root"
        _copy_root(wit_dir, root_dir)
        resolved: dict[tuple[str, str | None, str], LockedPackage] = {}

        def add(wanted: PackageName) -> None:
            entry, blob = resolver.resolve(wanted)
            key = (entry.name, entry.registry, entry.requirement)
            if key in resolved:
                raise WitError(
                    f"{wanted}: {entry.name}@{entry.version} was fetched but does not define "
                    "what the WIT uses from it"
                )
            resolved[key] = entry
            name = PackageName.parse(f"{entry.name}@{entry.version}")
            link = root_dir / DEPS_DIR / f"{name.dir_name}.wasm"
            shutil.copyfile(blob, link)

        printed_root = Path(scratch) / "printed"

        def resolve_all() -> dict[PackageName, Path]:
            """Add what wasm-tools names missing until the WIT resolves; the printed packages."""
            for _ in range(MAX_ROUNDS):
                shutil.rmtree(printed_root, ignore_errors=True)
                outcome = wasm_tools.print_packages(root_dir, printed_root)
                if not isinstance(outcome, wasm_tools.Missing):
                    return outcome
                add(outcome.package)
            raise WitError(f"{wit_dir}: more than {MAX_ROUNDS} foreign packages")

        printed = resolve_all()
        if mode is not Mode.UPDATE:
            # Lock entries for packages the resolution holds only inside others (wkg locks every
            # package the root names): keep them, so a lock written by wkg stays as it is.
            names = {str(p) for p in printed}
            extra = [
                e
                for key, e in resolver.lock.items()
                if key not in resolved
                and f"{e.name}@{e.version}" in names
                and e.requirement in (f"={e.version}", "*")
            ]
            for entry in extra:
                exact = entry.requirement != "*"
                add(PackageName.parse(entry.name + (f"@{entry.version}" if exact else "")))
            if extra:
                printed = resolve_all()
        roots = [p for p, f in printed.items() if f.parent == printed_root]
        if len(roots) != 1:
            raise WitError(f"{wit_dir}: expected one root package, wasm-tools printed {len(roots)}")
        root = roots[0]
        remove_stale(wit_dir, DEPS_DIR)
        staged = Path(tempfile.mkdtemp(prefix=staging_prefix(DEPS_DIR), dir=wit_dir))
        try:
            written = []
            for package, file in sorted(printed.items()):
                if package == root:
                    continue
                target = staged / package.dir_name
                target.mkdir()
                shutil.copyfile(file, target / "package.wit")
                written.append(package)
            staged.chmod(0o755)
            _swap_in(staged, wit_dir / DEPS_DIR)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    entries = tuple(sorted(resolved.values()))
    lock_written = False
    if mode is not Mode.LOCKED and (set(entries) != set(existing) or not lock_path.exists()):
        write_lock(lock_path, entries)
        lock_written = True
    return FetchResult(root, entries, tuple(written), lock_path, lock_written)
