"""componentize-py as a subprocess, behind a cache keyed by a hash of every input.

componentize-py's output is not byte-reproducible, so a rebuild of unchanged inputs reuses the
cached component: it is fast and keeps the artifact's digest.

The cache lives in ``$HATCH_WASM_OCI_CACHE`` when set, else in the per-user cache directory
(``$XDG_CACHE_HOME/hatch-wasm-oci`` or ``~/.cache/hatch-wasm-oci`` on Linux,
``~/Library/Caches/hatch-wasm-oci`` on macOS, ``%LOCALAPPDATA%\\hatch-wasm-oci\\Cache`` on
Windows). Delete that directory to clear it; ``HATCH_WASM_OCI_NO_CACHE=1`` bypasses it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.build.settings import ComponentizePySource
from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE, file_digest

CACHE_ENV = "HATCH_WASM_OCI_CACHE"
NO_CACHE_ENV = "HATCH_WASM_OCI_NO_CACHE"
CACHE_KEY_VERSION = "hatch-wasm-oci componentize cache v1"
#: Most recently used compiled components kept per cache directory.
CACHE_ENTRIES_KEPT = 16

# componentize-py reports failures as an AssertionError carrying its own message; print that
# message alone (no Python traceback, no Rust backtrace) and exit 1.
_RUNNER = """\
import sys
from componentize_py import script
sys.argv[0] = "componentize-py"
try:
    sys.exit(script())
except AssertionError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""

Log = Callable[[str], None]


class BuildStepError(WasmOciError):
    """An external build step (componentize-py or the ``command``) failed.

    ``str()`` is one line; ``output`` holds everything the step printed.
    """

    def __init__(self, message: str, output: str = "") -> None:
        self.output = output
        super().__init__(message)


@dataclass(frozen=True)
class CompileResult:
    """A compiled component: where it is, whether it came from the cache, and its input key."""

    path: Path
    cached: bool
    key: str


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where compiled components are kept, or None when caching is switched off."""
    env = os.environ if environ is None else environ
    if env.get(NO_CACHE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return None
    explicit = env.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "hatch-wasm-oci" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "hatch-wasm-oci"
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hatch-wasm-oci"


def compiler_version() -> str:
    """The installed componentize-py version."""
    try:
        return importlib.metadata.version("componentize-py")
    except importlib.metadata.PackageNotFoundError:
        raise WasmOciError("componentize-py is not installed in the build environment") from None


def compiler_arguments(source: ComponentizePySource, output: Path) -> list[str]:
    """componentize-py's command line (after the program name) for ``source``."""
    argv: list[str] = []
    for wit in source.wit_paths:
        argv += ["-d", wit]
    argv += ["-w", source.world, "componentize"]
    for entry in source.python_path:
        argv += ["-p", entry]
    if source.stub_wasi:
        argv.append("--stub-wasi")
    argv += [*source.args, source.app, "-o", str(output)]
    return argv


def _walk_files(top: Path, excluded: set[Path]) -> Iterator[Path]:
    if top.is_file():
        yield top
        return
    for directory, dirs, files in os.walk(top):
        here = Path(directory)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d != "__pycache__" and (here / d).resolve() not in excluded
        )
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield here / name


def _visible_distributions() -> list[str]:
    found = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        found.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={dist.version}")
    return sorted(found)


def input_key(
    source: ComponentizePySource,
    root: Path,
    *,
    exclude: Iterable[Path] = (),
    distributions: Iterable[str] | None = None,
) -> str:
    """SHA-256 over every input of a compile.

    Covers the compiler version, its arguments, the WIT files, every file under the Python path
    (hidden directories, ``__pycache__`` and ``exclude`` skipped), and the installed
    distributions the app can import.
    """
    excluded = {Path(p).resolve() for p in exclude}
    digest = hashlib.sha256()

    def feed(label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    feed("key", CACHE_KEY_VERSION)
    feed("compiler", compiler_version())
    feed("python", sys.version)
    feed("argv", "\0".join(compiler_arguments(source, Path("OUT"))))
    python_path = source.python_path or (".",)
    for label, tops in (("wit", source.wit_paths), ("python-path", python_path)):
        for top in tops:
            top_path = (root / top).resolve()
            feed(label, top)
            for file in _walk_files(top_path, excluded):
                feed("file", file.relative_to(top_path).as_posix() if file != top_path else "")
                feed("sha256", file_digest(file))
    for dist in _visible_distributions() if distributions is None else distributions:
        feed("dist", dist)
    return digest.hexdigest()


def compiler_summary(output: str) -> str:
    """The line of componentize-py's output that says why it failed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        if after:
            return after[-1]
    return lines[0] if lines else "no output"


def last_line(output: str) -> str:
    """The last non-blank line of ``output`` (empty when there is none)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_step(
    command: str | Sequence[str],
    *,
    cwd: Path,
    where: str,
    shown: str,
    log: Log,
    summary: Callable[[str], str] = last_line,
    env: Mapping[str, str] | None = None,
    writes: Path | None = None,
    log_prefix: str = "",
) -> None:
    """Run an external build step from ``cwd``, its stderr merged into its stdout.

    A string runs through the shell. On success each non-blank output line goes to ``log``.
    BuildStepError (one line naming ``where`` and ``shown``, plus ``summary`` of the output, and
    the whole output attached) when it cannot start, exits non-zero, or does not write
    ``writes``.
    """
    try:
        result = subprocess.run(
            command if isinstance(command, str) else list(command),
            shell=isinstance(command, str),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise BuildStepError(f"{where}: cannot run {shown}: {exc.strerror}") from None
    output = result.stdout or ""
    if result.returncode != 0 or (writes is not None and not writes.is_file()):
        reason = summary(output)
        raise BuildStepError(
            f"{where}: {shown} failed (exit status {result.returncode})"
            + (f": {reason}" if reason else ""),
            output,
        )
    for line in output.splitlines():
        if line.strip():
            log(f"{log_prefix}{line.rstrip()}")


def _compiler_env() -> dict[str, str]:
    env = dict(os.environ)
    env["RUST_BACKTRACE"] = "0"
    env["RUST_LIB_BACKTRACE"] = "0"
    if sys.prefix != sys.base_prefix:
        # Let componentize-py find this environment's site-packages (the app may import them).
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def run_compiler(
    source: ComponentizePySource, root: Path, output: Path, *, where: str, log: Log
) -> None:
    """Run componentize-py from ``root``; raise BuildStepError with its own message on failure."""
    run_step(
        [sys.executable, "-c", _RUNNER, *compiler_arguments(source, output)],
        cwd=root,
        where=where,
        shown="componentize-py",
        log=log,
        summary=compiler_summary,
        env=_compiler_env(),
        writes=output,
        log_prefix="componentize-py: ",
    )


def _prune(cache_dir: Path, keep: int) -> None:
    entries = sorted(cache_dir.glob("*.wasm"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)


def componentize(
    source: ComponentizePySource,
    *,
    root: Path,
    workdir: Path,
    where: str,
    exclude: Iterable[Path] = (),
    cache_dir: Path | None = None,
    use_cache: bool = True,
    waiting: Log = print,
    log: Log = print,
) -> CompileResult:
    """Compile ``source`` (or reuse the cached result of identical inputs).

    ``where`` is the TOML path named in errors; ``workdir`` receives the fresh component when
    there is no cache. ``cache_dir`` defaults to :func:`default_cache_dir`.
    """
    root = Path(root)
    key = input_key(source, root, exclude=exclude)
    cache = (cache_dir or default_cache_dir()) if use_cache else None
    entry = None if cache is None else cache / "componentize-py" / f"{key}.wasm"
    if entry is not None and entry.is_file():
        os.utime(entry)
        log(f"Reusing the component compiled from identical inputs ({entry})")
        return CompileResult(entry, True, key)
    waiting(f"Compiling {source.app} for world {source.world} with componentize-py")
    fresh = Path(workdir) / f"{key[:16]}.wasm"
    run_compiler(source, root, fresh, where=where, log=log)
    if entry is None:
        return CompileResult(fresh, False, key)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with replacing(entry) as sink, fresh.open("rb") as compiled:
            shutil.copyfileobj(compiled, sink, CHUNK_SIZE)
        _prune(entry.parent, CACHE_ENTRIES_KEPT)
    except OSError as exc:
        log(f"Not caching the component ({entry.parent}: {exc.strerror})")
        return CompileResult(fresh, False, key)
    return CompileResult(entry, False, key)


_PACKAGE = re.compile(
    r"^\s*package\s+(%?[a-z][a-z0-9-]*(?::%?[a-z][a-z0-9-]*)+)(@[^\s;{]+)?\s*;", re.MULTILINE
)
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def _wit_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.glob("*.wit") if p.is_file())
    return []


def qualified_world(source: ComponentizePySource, root: Path) -> str | None:
    """The world as ``namespace:package/world@version``, from the WIT package declaring it.

    A world given already qualified is returned unchanged; None when the WIT does not declare it
    (componentize-py will then report the problem itself).
    """
    world = source.world
    if ":" in world:
        return world
    world_decl = re.compile(rf"^\s*world\s+%?{re.escape(world)}\s*\{{", re.MULTILINE)
    for wit in source.wit_paths:
        files = _wit_files(root / wit)
        texts = {file: _COMMENTS.sub("", file.read_text(errors="replace")) for file in files}
        declared = [file for file, text in texts.items() if world_decl.search(text)]
        if not declared:
            continue
        package = None
        for text in [texts[declared[0]], *texts.values()]:
            match = _PACKAGE.search(text)
            if match:
                package = match
                break
        if package is None:
            return None
        name = package.group(1).replace("%", "")
        version = package.group(2) or ""
        return f"{name}/{world}{version}"
    return None
