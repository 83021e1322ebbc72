"""componentize-py as a subprocess, behind a cache keyed by a hash of every input.

Everything about a compile is held still here: the inputs are staged under stable relative paths
with fixed file times, the compiler runs with a clean environment (no inherited ``VIRTUAL_ENV``,
``PATH`` or user site) and sees only the ``-p`` paths plus the build environment's
site-packages; where :mod:`~hatch_wasm_oci.project.deterministic` works, what the app sees
while componentize-py pre-initialises it is fixed too, so the output is byte-reproducible
(elsewhere componentize-py's heap snapshot differs from run to run:
bytecodealliance/componentize-py#247). A rebuild of unchanged inputs reuses the cached
component.

The cache lives in ``$HATCH_WASM_OCI_CACHE`` when set, else in the per-user cache directory
(``$XDG_CACHE_HOME/hatch-wasm-oci`` or ``~/.cache/hatch-wasm-oci`` on Linux,
``~/Library/Caches/hatch-wasm-oci`` on macOS, ``%LOCALAPPDATA%\\hatch-wasm-oci\\Cache`` on
Windows). Delete that directory to clear it; ``HATCH_WASM_OCI_NO_CACHE=1`` bypasses it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.cache_home import enabled_cache_root
from hatch_wasm_oci.files.digest import file_digest
from hatch_wasm_oci.project import compile_cache, deterministic
from hatch_wasm_oci.project.registry_cache import RegistryCache
from hatch_wasm_oci.project.settings import ComponentizePySource

CACHE_ENV = "HATCH_WASM_OCI_CACHE"
NO_CACHE_ENV = "HATCH_WASM_OCI_NO_CACHE"
CACHE_KEY_VERSION = "hatch-wasm-oci componentize cache v3"
#: File times of the staged inputs and the compiler's SOURCE_DATE_EPOCH (1980-01-01, zip-safe).
FIXED_EPOCH = 315532800
#: Output of a build step kept for its error summary (the rest is only streamed).
OUTPUT_KEPT = 1 << 20

# componentize-py reports failures as an AssertionError carrying its own message; print that
# message alone (no Python traceback, no Rust backtrace) and exit 1.
_RUNNER = (
    deterministic.RUNNER_CHECK
    + """\
import sys
from componentize_py import script
sys.argv[0] = "componentize-py"
try:
    sys.exit(script())
except AssertionError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""
)

Log = Callable[[str], None]


class BuildStepError(WasmOciError):
    """An external build step (componentize-py or the ``command``) failed.

    ``str()`` is one line; ``output`` holds what the step printed (``streamed`` when it was
    already shown line by line as it ran).
    """

    def __init__(self, message: str, output: str = "", *, streamed: bool = False) -> None:
        self.output = output
        self.streamed = streamed
        super().__init__(message)


@dataclass(frozen=True)
class CompileResult:
    """A compiled component: where it is, whether it came from a cache, its input key, and
    where it came from (``compiled``, ``local`` or ``registry``)."""

    path: Path
    cached: bool
    key: str
    origin: str = "compiled"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where compiled components are kept, or None when caching is switched off."""
    return enabled_cache_root(environ)


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


def visible_distributions() -> list[str]:
    """``name==version`` of every distribution this build environment holds (what the compile
    cache key covers, and the provenance records)."""
    return list(_distributions_on(tuple(sys.path)))


@functools.lru_cache(maxsize=4)
def _distributions_on(path: tuple[str, ...]) -> tuple[str, ...]:
    """``name==version`` of every distribution on ``path`` (read once per path per process:
    the provenance asks again for the key the compile just computed)."""
    found = set()
    for dist in importlib.metadata.distributions(path=list(path)):
        name = dist.metadata["Name"] or ""
        found.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={dist.version}")
    return tuple(sorted(found))


def input_key(
    source: ComponentizePySource,
    root: Path,
    *,
    exclude: Iterable[Path] = (),
    distributions: Iterable[str] | None = None,
    reproducible: bool | None = None,
) -> str:
    """SHA-256 over every input of a compile.

    Covers the compiler version, its arguments, the WIT files, every file under the Python path
    (hidden directories, ``__pycache__`` and ``exclude`` skipped), the host Python's version
    (``X.Y``), the installed distributions the app can import and whether the compile is
    deterministic (``reproducible``; default: where it can be), so that a cache never serves a
    non-deterministic compile for a deterministic one. Nothing in it depends on where the project
    is checked out.
    """
    if reproducible is None:
        reproducible = deterministic.unavailable() is None
    excluded = {Path(p).resolve() for p in exclude}
    digest = hashlib.sha256()

    def feed(label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    feed("key", CACHE_KEY_VERSION)
    feed("compiler", compiler_version())
    feed("python", f"{sys.version_info[0]}.{sys.version_info[1]}")
    feed("argv", "\0".join(compiler_arguments(source, Path("OUT"))))
    python_path = source.python_path or (".",)
    for label, tops in (("wit", source.wit_paths), ("python-path", python_path)):
        for top in tops:
            top_path = (root / top).resolve()
            feed(label, top)
            for file in _walk_files(top_path, excluded):
                feed("file", file.relative_to(top_path).as_posix() if file != top_path else "")
                feed("sha256", file_digest(file))
    for dist in visible_distributions() if distributions is None else distributions:
        feed("dist", dist)
    feed("deterministic", "yes" if reproducible else "no")
    return digest.hexdigest()


_FILE_LINE = re.compile(r'^File "(?P<file>[^"<][^"]*)", line (?P<line>\d+)')
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)\b")
_LOCATION = re.compile(r"^-->\s*(?P<where>\S.*)$")
_CAUSE = re.compile(r"^(?:\d+:\s+)?(?P<message>.+)$")
_KNOWN_PACKAGES = re.compile(r"\.\s*known packages:\s*$")
_TOOL_ERROR = re.compile(r"^(?:[\w./-]+:\s*)?(?:error|fatal)(?:\[[^\]]*\])?:\s*\S", re.IGNORECASE)
# Carets and code gutters (`   ^^^`, ` 7 |  code`, ` |`), runtime banners (`Node.js v20.11.1`)
# and framing lines never name an error.
_NOISE = re.compile(
    r"^(?:[\s^~|]*|\d+\s*\|.*|\|.*|[\w.-]+ v\d+(?:\.\d+)*|Traceback \(most recent call last\):"
    r"|Caused by:|Stack backtrace:|at (?:async )?\S.*:\d+:\d+\)?)$"
)
# A tool's own label before its message: `(jco transpileCmd) ComponentError: ...`.
_TOOL_PREFIX = re.compile(r"^\([\w .-]+\)\s+")


def _meaningful(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if not _NOISE.match(line.strip())]


def _with_location(lines: list[str], index: int) -> str:
    """``lines[index]``, plus ``--> file:line:col`` when one of the next lines gives it."""
    for follow in lines[index + 1 : index + 3]:
        match = _LOCATION.match(follow)
        if match:
            return f"{lines[index]} --> {match.group('where')}"
    return lines[index]


def _deepest_cause(block: list[str]) -> str | None:
    """The last entry of a Rust error chain (the lines after ``Caused by:``), with the location
    that follows it. An entry is a line at the chain's own indentation; deeper lines continue
    it (``known packages:`` lists) and are not entries."""
    entries = [line for line in block if line.strip() and not _NOISE.match(line.strip())]
    depth = {i: len(line) - len(line.lstrip()) for i, line in enumerate(entries)}
    causes = [i for i, line in enumerate(entries) if not _LOCATION.match(line.strip())]
    if not causes:
        return None
    indent = min(depth[i] for i in causes)
    last = [i for i in causes if depth[i] == indent][-1]
    match = _CAUSE.match(entries[last].strip())
    message = match.group("message") if match else entries[last].strip()
    message = _KNOWN_PACKAGES.sub("", message)
    for follow in entries[last + 1 :]:
        location = _LOCATION.match(follow.strip())
        if location:
            return f"{message} --> {location.group('where')}"
    return message


_UNRESOLVED_WORLD = re.compile(r'Unable to resolve `(?:Some\()?"?(?P<world>[^`"()]*)"?\)?`')
_LISTED_NAME = re.compile(r'^"(?P<name>[^"]+)",?$')


def _unresolved_world(lines: list[str]) -> str | None:
    """componentize-py's ``Unable to resolve `Some("w")`. Available worlds: [...]`` as one line
    (its own last cause, ``There are multiple main packages…:``, names neither)."""
    for index, line in enumerate(lines):
        match = _UNRESOLVED_WORLD.search(line)
        if match is None:
            continue
        worlds: list[str] = []
        if index + 1 < len(lines) and lines[index + 1] == "Available worlds: [":
            for item in lines[index + 2 :]:
                listed = _LISTED_NAME.match(item)
                if listed is None:
                    break
                worlds.append(listed.group("name"))
        available = f"; available worlds: {', '.join(worlds)}" if worlds else ""
        return f"world {match.group('world')!r} was not found in the WIT{available}"
    return None


def error_summary(output: str, *, first: bool = False) -> str:
    """The line of a failed step's output that names the error, with its file and line.

    In order: a Python exception (``SyntaxError: ... (src/app.py, line 13)``, located by the
    traceback's last ``File`` line), the deepest cause of a Rust error chain after
    ``Caused by:`` (``expected '}' ... --> wit/x.wit:7:5``), the first ``error:`` line of a
    tool (a label such as jco's ``(jco transpileCmd)`` before it is allowed); else the last
    line (the first with ``first``). Carets, code gutters, runtime banners (``Node.js v20``),
    Node stack frames and Rust backtraces are never chosen.
    """
    raw_lines = output.splitlines()
    if "Stack backtrace:" in (line.strip() for line in raw_lines):  # frames name no error
        raw_lines = raw_lines[: [line.strip() for line in raw_lines].index("Stack backtrace:")]
        output = "\n".join(raw_lines)
    lines = _meaningful(output)
    if not lines:
        return "no output"
    bare = [_TOOL_PREFIX.sub("", line) for line in lines]
    for index, line in enumerate(lines):
        if _EXCEPTION.match(bare[index]) and not line.startswith("AssertionError"):
            located = [m for m in map(_FILE_LINE.match, lines[:index]) if m]
            if located:
                where = located[-1]
                return f"{line} ({where.group('file')}, line {where.group('line')})"
            return _with_location(lines, index)
    raw = [line.strip() for line in raw_lines]
    if "Caused by:" in raw:
        cause = _deepest_cause(raw_lines[raw.index("Caused by:") + 1 :])
        if cause and cause.endswith(":"):  # it introduces a list: the head says more
            cause = _unresolved_world(raw) or cause.rstrip(":")
        if cause:
            return cause
    for index in range(len(lines)):
        if _TOOL_ERROR.match(bare[index]):
            return _with_location(lines, index)
    return lines[0] if first else lines[-1]


def compiler_summary(output: str) -> str:
    """:func:`error_summary` for componentize-py (whose own message comes first)."""
    return error_summary(output, first=True)


def sandbox_paths(python_path: Sequence[str]) -> Callable[[str], str]:
    """A function mapping componentize-py's guest paths (``/0/pkg/app.py`` for the first
    ``-p`` entry) in a line of its output back to the project's (``src/pkg/app.py``)."""
    pattern = re.compile(r"(^|[\"'\s(])/(\d+)/")

    def translate(line: str) -> str:
        def replace(match: re.Match[str]) -> str:
            index = int(match.group(2))
            if index >= len(python_path):
                return match.group(0)
            top = python_path[index].rstrip("/")
            return match.group(1) + ("" if top in ("", ".") else f"{top}/")

        return pattern.sub(replace, line)

    return translate


def run_step(
    command: str | Sequence[str],
    *,
    cwd: Path,
    where: str,
    shown: str,
    log: Log,
    summary: Callable[[str], str] = error_summary,
    env: Mapping[str, str] | None = None,
    writes: Path | None = None,
    log_prefix: str = "",
    translate: Callable[[str], str] | None = None,
    verbosity: int = 0,
    display: str | None = None,
) -> None:
    """Run an external build step from ``cwd``, its stderr merged into its stdout.

    A string runs through the shell. Each non-blank output line goes to ``log`` as it arrives
    (through ``translate``, e.g. :func:`sandbox_paths`), unless ``verbosity`` is below 0
    (Hatch's ``-q``); at 1 and above (``-v``) the command line (or ``display``) is logged first.
    BuildStepError (one line naming ``where`` and ``shown``, plus ``summary`` of the output, and
    the output attached) when it cannot start, exits non-zero, or does not write ``writes``.
    """
    argv = command if isinstance(command, str) else list(command)
    if verbosity >= 1:
        shown_argv = argv if isinstance(argv, str) else shlex.join(argv)
        log(f"{log_prefix}running {display or shown_argv}")
    try:
        process = subprocess.Popen(
            argv,
            shell=isinstance(command, str),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise BuildStepError(f"{where}: cannot run {shown}: {exc.strerror}") from None
    kept: list[str] = []
    size = 0
    tail: deque[str] = deque(maxlen=200)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\r\n")
            if translate is not None:
                line = translate(line)
            if size < OUTPUT_KEPT:
                kept.append(line)
                size += len(line) + 1
            else:
                tail.append(line)
            if verbosity >= 0 and line.strip():
                log(f"{log_prefix}{line.rstrip()}")
        returncode = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "\n".join([*kept, *(["..."] if tail else []), *tail])
    if returncode != 0 or (writes is not None and not writes.is_file()):
        reason = summary(output)
        raise BuildStepError(
            f"{where}: {shown} failed (exit status {returncode})"
            + (f": {reason}" if reason else ""),
            output,
            streamed=verbosity >= 0,
        )


def _staged_name(top: str, index: int) -> str:
    """Where an input path goes in the staging directory: relative paths inside the project
    keep their name (so messages name the project's files); others get ``_outside/<n>``."""
    path = Path(top)
    if path.is_absolute() or ".." in path.parts:
        return f"_outside/{index}/{path.name}"
    return path.as_posix()


def _fix_times(top: Path) -> None:
    for directory, _, files in os.walk(top, topdown=False):
        for name in files:
            os.utime(Path(directory) / name, (FIXED_EPOCH, FIXED_EPOCH))
        os.utime(directory, (FIXED_EPOCH, FIXED_EPOCH))


def stage_inputs(
    source: ComponentizePySource, root: Path, stage: Path, *, exclude: Iterable[Path] = ()
) -> ComponentizePySource:
    """Copy every input of ``source`` (the files :func:`input_key` hashes) into ``stage``.

    Files are copied in sorted order, without hidden directories or bytecode, and every time is
    set to :data:`FIXED_EPOCH`, so the compiler sees the same tree whatever the checkout path,
    file times or stray ``__pycache__``. Returns ``source`` with its paths renamed for ``stage``.
    """
    excluded = {Path(p).resolve() for p in exclude}
    stage.mkdir(parents=True, exist_ok=True)
    renamed: dict[str, str] = {}
    tops = [*source.wit_paths, *(source.python_path or (".",))]
    for index, top in enumerate(tops):
        if top in renamed:
            continue
        name = _staged_name(top, index)
        renamed[top] = name
        origin = (root / top).resolve()
        for file in _walk_files(origin, excluded):
            relative = file.relative_to(origin) if file != origin else Path()
            target = stage / name / relative if relative.parts else stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    _fix_times(stage)
    return dataclasses.replace(
        source,
        wit_paths=tuple(renamed[top] for top in source.wit_paths),
        python_path=tuple(renamed[top] for top in source.python_path or (".",)),
    )


def compiler_env(stage: Path, venv: Path | None = None) -> dict[str, str]:
    """componentize-py's whole environment: nothing inherited but what Windows needs to run.

    ``VIRTUAL_ENV`` is ``venv``, else this build environment (whose packages the app may import)
    or, outside a virtual environment, an empty directory under ``stage`` (never the user's
    site-packages); ``PATH`` is an empty directory (so no ``pipenv`` is found); times, locale
    and hash seed are fixed.
    """
    empty = stage / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    env = {name: os.environ[name] for name in ("SYSTEMROOT", "WINDIR") if name in os.environ}
    in_venv = sys.prefix != sys.base_prefix
    venv_dir = str(venv) if venv is not None else sys.prefix if in_venv else str(empty)
    env.update(
        {
            "PATH": str(empty),
            "HOME": str(empty),
            "VIRTUAL_ENV": venv_dir,
            "TMPDIR": str(empty),
            "TEMP": str(empty),
            "TMP": str(empty),
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "SOURCE_DATE_EPOCH": str(FIXED_EPOCH),
            "RUST_BACKTRACE": "0",
            "RUST_LIB_BACKTRACE": "0",
        }
    )
    return env


def run_compiler(
    source: ComponentizePySource,
    root: Path,
    output: Path,
    *,
    where: str,
    log: Log,
    exclude: Iterable[Path] = (),
    verbosity: int = 0,
    key: str | None = None,
) -> bool:
    """Stage the inputs of ``source`` beside ``output`` and run componentize-py on them; raise
    BuildStepError with its own message (paths mapped back to the project's) on failure.

    With ``key`` (the input key) the compile is deterministic where it can be
    (:mod:`~hatch_wasm_oci.project.deterministic`); a one-line reason goes to ``log`` when it
    cannot be. Returns whether it was."""
    stage = output.parent / f"{output.stem}-stage"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        staged = stage_inputs(source, root, stage / "src", exclude=exclude)
        arguments = compiler_arguments(staged, output.resolve())
        with ExitStack() as held:
            extra: dict[str, str] = {}
            venv = None
            reason = "no input key" if key is None else deterministic.unavailable()
            if key is not None and reason is None:
                try:
                    extra = held.enter_context(deterministic.shim(key))
                except deterministic.ShimUnavailable as exc:
                    reason = str(exc)
            if reason is not None:
                log(f"componentize-py: this compile is not reproducible ({reason})")
            elif sys.prefix != sys.base_prefix:
                venv = deterministic.copy_environment(Path(sys.prefix), stage / "venv")
            run_step(
                [sys.executable, "-c", _RUNNER, *arguments],
                cwd=stage / "src",
                where=where,
                shown="componentize-py",
                log=log,
                summary=compiler_summary,
                env={**compiler_env(stage, venv), **extra},
                writes=output,
                log_prefix="componentize-py: ",
                translate=sandbox_paths(source.python_path or (".",)),
                verbosity=verbosity,
                display=f"componentize-py {shlex.join(arguments)} (in {stage / 'src'})",
            )
            return reason is None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def componentize(
    source: ComponentizePySource,
    *,
    root: Path,
    workdir: Path,
    where: str,
    exclude: Iterable[Path] = (),
    cache_dir: Path | None = None,
    use_cache: bool = True,
    registry: RegistryCache | None = None,
    waiting: Log = print,
    log: Log = print,
    warn: Log | None = None,
    verbosity: int = 0,
) -> CompileResult:
    """Compile ``source``, or reuse the result of identical inputs from the local cache, else
    from the ``registry`` cache (a fresh compile is then stored in both).

    ``where`` is the TOML path named in errors; ``workdir`` receives the fresh component when
    there is no local cache. ``cache_dir`` defaults to :func:`default_cache_dir`; ``use_cache``
    false skips the local cache. Registry cache problems go to ``warn`` (default ``log``).
    """
    root = Path(root)
    warn = warn or log
    reproducible = deterministic.unavailable() is None
    key = input_key(source, root, exclude=exclude, reproducible=reproducible)
    cache = (cache_dir or default_cache_dir()) if use_cache else None
    out = Path(workdir) / f"{key[:16]}.wasm"
    if cache is not None and compile_cache.load(cache, key, out, notice=warn):
        entry = compile_cache.entry_path(cache, key)
        log(f"Reusing the component compiled from identical inputs ({entry})")
        return CompileResult(out, True, key, "local")
    if registry is not None:
        try:
            hit = registry.fetch(key, compiler_version(), out, warn=warn)
        except OSError as exc:  # the work directory could not be written
            warn(f"Not using the registry cache ({exc.strerror or exc})")
            hit = None
        if hit is not None:
            log(
                "Reusing the component compiled from identical inputs "
                f"({registry.repository}:{key[:16]}...)"
            )
            if verbosity >= 1:
                log(hit.describe())
            if cache is not None:
                compile_cache.save(cache, key, out, notice=log)
            return CompileResult(out, True, key, "registry")
    waiting(f"Compiling {source.app} for world {source.world} with componentize-py")
    held_still = run_compiler(
        source, root, out, where=where, log=log, exclude=exclude, verbosity=verbosity, key=key
    )
    if reproducible and not held_still:  # the shim failed: never cache it as deterministic
        return CompileResult(out, False, key, "compiled")
    if cache is not None:
        compile_cache.save(cache, key, out, notice=log)
    if registry is not None:
        digest = registry.store(key, compiler_version(), out, warn=warn)
        if digest is not None:
            log(f"Stored in the registry cache: {registry.repository}:{key[:16]}... ({digest})")
    return CompileResult(out, False, key, "compiled")
