"""A loaded component: its exported functions, called with plain Python values.

``load(target)`` compiles (or reuses the compiled cache), instantiates against a WASI 0.2
host that shows nothing of the host unless asked (no arguments, environment or directories;
stdout and stderr pass through), and returns a :class:`LoadedComponent`.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

from hatch_wasm_oci.errors import ComponentError, ComponentTrap, UnknownExportError, ValueTypeError
from hatch_wasm_oci.runtime import marshal
from hatch_wasm_oci.runtime.engine import (
    cache_root,
    check_timeout,
    compile_binary,
    deadline_ticks,
    engine,
)
from hatch_wasm_oci.runtime.guest_thread import call_guest
from hatch_wasm_oci.runtime.store import RegistryOptions
from hatch_wasm_oci.runtime.target import Artifact, resolve
from hatch_wasm_oci.runtime.types import FunctionType
from hatch_wasm_oci.runtime.values import check, field_key
from hatch_wasm_oci.wasm.binary import WasmKind

STDERR_TAIL = 8192
# The last line of a Python traceback: ``ValueError: bad input`` (componentize-py guests).
_PY_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)(?::.*)?)$")
_MISSING_FILE = re.compile(r"No such file or directory: '([^']+)'")
_MISSING_ENV = re.compile(r"^KeyError: '([A-Za-z_][A-Za-z0-9_]*)'$")


#: The export componentize-py adds to every component to set up its Python runtime
#: (``exports#init``); callable, but never part of the project's world, so not listed.
COMPONENTIZE_PY_INIT = ("exports", "init")


class GuestExit(ComponentError):
    """The guest called ``wasi:cli/exit``; ``code`` is its exit status."""

    def __init__(self, where: str, code: int) -> None:
        self.code = code
        super().__init__(f"{where}: the component exited with status {code}")


@dataclass(frozen=True)
class WasiOptions:
    """What the guest may see of the host: arguments, environment, directories, stdin."""

    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    dirs: Sequence[tuple[str, str]] = ()  # (host path, guest path)
    stdin: bool = False
    #: Seconds each call (or a command) may run before it is interrupted; None: no limit.
    timeout: float | None = None
    #: Rewrites each line the guest writes to stderr (e.g. componentize-py's ``/0/app.py``
    #: guest paths back to the project's ``src/app.py``); None: passed through as written.
    stderr_lines: Callable[[str], str] | None = None

    def config(self, stderr: StderrTail) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        wasi.argv = list(self.args)
        wasi.env = list(self.env.items())
        for host, guest in self.dirs:
            if not Path(host).is_dir():
                raise ComponentError(f"--dir {host}: not a directory")
            wasi.preopen_dir(host, guest)
        if self.stdin:
            wasi.inherit_stdin()
        wasi.inherit_stdout()
        stderr.configure(wasi)
        return wasi


class StderrTail:
    """The guest's stderr: passed through to ours, its last few KiB kept for error messages.

    The guest writes into a pipe that wasmtime opens itself (``/dev/fd/N``; a Python callback
    would run on wasmtime's I/O threads, which can outlive the interpreter). A thread drains
    it to our stderr as it arrives, so nothing ever lands on disk and a guest that writes
    without end waits on the pipe (64 KiB) instead of filling ``$TMPDIR``.
    """

    def __init__(self, translate: Callable[[str], str] | None = None) -> None:
        self._drain = _Drain(translate)
        weakref.finalize(self, self._drain.close)

    def configure(self, wasi: wasmtime.WasiConfig) -> None:
        if self._drain.path is None:  # pragma: no cover - no /dev/fd (Windows)
            wasi.inherit_stderr()
        else:
            wasi.stderr_file = self._drain.path

    def pump(self) -> None:
        """Copy what the guest wrote and the drain has not copied yet to our stderr."""
        self._drain.pump()

    def take(self) -> str:
        """Pump, then return (and forget) the tail the guest wrote since the last take."""
        return self._drain.take()

    @contextlib.contextmanager
    def follow(self) -> Iterator[None]:
        """The guest's stderr reaches ours as it is written (always so; kept for callers)."""
        yield


class _Drain:
    """A pipe and the daemon thread that empties it (no reference back to its owner, so the
    owner's finalizer can stop it)."""

    def __init__(self, translate: Callable[[str], str] | None = None) -> None:
        self._translate = translate
        self._pending = b""  # a partial line held back for ``translate`` until its newline
        self._tail = b""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.path: str | None = None
        if not os.path.isdir("/dev/fd"):  # pragma: no cover - Windows
            self._read = self._write = -1
            return
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        self.path = f"/dev/fd/{self._write}"
        threading.Thread(target=self._loop, name="guest-stderr", daemon=True).start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(OSError, ValueError):
                select.select([self._read], [], [], 0.2)
            self.pump()
        os.close(self._read)

    def pump(self) -> None:
        with self._lock:
            while not self._closed.is_set():
                try:
                    data = os.read(self._read, 1 << 16)
                except OSError:  # BlockingIOError: nothing more for now
                    data = b""
                if not data:
                    self._write_out(b"", final=True)
                    return
                self._tail = (self._tail + data)[-STDERR_TAIL:]
                self._write_out(data, final=False)

    def _write_out(self, data: bytes, *, final: bool) -> None:
        if self._translate is not None:
            data, self._pending = self._pending + data, b""
            cut = len(data) if final else data.rfind(b"\n") + 1
            if cut == 0 and len(data) < STDERR_TAIL:
                self._pending = data
                return
            if cut:
                data, self._pending = data[:cut], data[cut:]
            text = data.decode(errors="replace")
            data = "".join(self._translate(line) for line in text.splitlines(True)).encode()
        if not data:
            return
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
            sys.stderr.buffer.write(data)
            sys.stderr.buffer.flush()

    def take(self) -> str:
        if self.path is not None:
            self.pump()
        with self._lock:
            text = self._tail.decode(errors="replace")
            self._tail = b""
        return text

    def close(self) -> None:
        """Stop the thread (it closes the read end); wasmtime keeps its own write end until
        its store is dropped."""
        if self.path is None or self._closed.is_set():  # pragma: no cover - Windows
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            os.close(self._write)


def guest_failure(stderr: str) -> tuple[str | None, str | None]:
    """The guest's Python exception line and a capability hint, read from its stderr."""
    exception = None
    hint = None
    for line in stderr.splitlines():
        line = line.strip()
        if _PY_EXCEPTION.match(line):
            exception = line
        missing = _MISSING_FILE.search(line)
        if missing:
            directory = os.path.dirname(missing.group(1)) or "/"
            hint = f"the guest sees no host directories unless given: add --dir HOST::{directory}"
        env = _MISSING_ENV.match(line)
        if env:
            hint = f"the guest sees no environment variables unless given: add --env {env.group(1)}"
    return exception, hint


def trap_message(exc: BaseException) -> str:
    """The one line that says why wasmtime stopped (the last ``Caused by`` line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1]


def trap_error(
    where: str, exc: BaseException, stderr: str, timeout: float | None = None
) -> ComponentTrap:
    trap = trap_message(exc)
    if timeout is not None and trap.endswith("wasm trap: interrupt"):
        return ComponentTrap(f"{where} timed out after {timeout:g} s (--timeout)")
    message = f"{where} trapped: {trap}"
    exception, hint = guest_failure(stderr)
    if exception:
        message += f" (the guest raised {exception})"
    if hint:
        message += f"; {hint}"
    return ComponentTrap(message)


@dataclass(frozen=True)
class _Export:
    instance: str | None  # None for a root function
    name: str
    type: FunctionType

    @property
    def full_name(self) -> str:
        return self.name if self.instance is None else f"{self.instance}#{self.name}"


def _exports(component: wc.Component, eng: wasmtime.Engine) -> list[_Export]:
    found: list[_Export] = []
    root = component.type.exports(eng)
    root_names = marshal.TypeNames([(n, e.ty) for n, e in root.items()])
    for name, extern in root.items():
        ty = extern.ty
        if isinstance(ty, wc.FuncType):
            found.append(_Export(None, name, _function_type(name, ty, root_names)))
        elif isinstance(ty, wc.ComponentInstanceType):
            members = ty.exports(eng)
            names = marshal.TypeNames([(n, e.ty) for n, e in members.items()])
            for member, member_extern in members.items():
                member_ty = member_extern.ty
                if isinstance(member_ty, wc.FuncType):
                    found.append(_Export(name, member, _function_type(member, member_ty, names)))
    return found


def _function_type(name: str, ty: wc.FuncType, names: marshal.TypeNames) -> FunctionType:
    params = tuple((n, marshal.wit_type(t, names)) for n, t in ty.params)
    result = ty.result
    return FunctionType(name, params, None if result is None else marshal.wit_type(result, names))


def _interface_short(instance: str) -> str:
    """``example:inventory/stock@0.1.0`` -> ``stock``."""
    return instance.split("/")[-1].split("@")[0]


class ExportedFunction:
    """One exported function; call it with Python values (positional or by parameter name)."""

    def __init__(self, owner: LoadedComponent, export: _Export) -> None:
        self._owner = owner
        self._export = export
        self.name = export.full_name
        self.type = export.type

    @property
    def signature(self) -> str:
        """The function in WIT syntax: ``reserve: func(item: item, amount: u32) -> ...``."""
        return self.type.wit()

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        """The arguments checked against the parameter types, in parameter order."""
        params = self.type.params
        if len(args) > len(params):
            raise ValueTypeError(
                f"{self.name}: takes {len(params)} argument(s), got {len(args)}; "
                f"expected {self.signature}"
            )
        values: dict[str, Any] = {params[i][0]: arg for i, arg in enumerate(args)}
        keys = {field_key(name): name for name, _ in params}
        for key, arg in kwargs.items():
            name = keys.get(field_key(key))
            if name is None or name in values:
                what = "unknown" if name is None else "repeated"
                raise ValueTypeError(
                    f"{self.name}: {what} argument {key}; expected {self.signature}"
                )
            values[name] = arg
        missing = [name for name, _ in params if name not in values]
        if missing:
            raise ValueTypeError(
                f"{self.name}: missing argument(s) {', '.join(missing)}; expected {self.signature}"
            )
        checked = []
        for name, ty in params:
            try:
                checked.append(check(values[name], ty, f"argument {name}"))
            except ValueTypeError as exc:
                raise ValueTypeError(f"{self.name}: {exc}; expected {self.signature}") from None
        return checked

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_checked(self.bind(args, kwargs))

    def call_checked(self, values: Sequence[Any]) -> Any:
        """Call with values already checked (as :meth:`bind` or the WAVE parser return them)."""
        return self._owner._call(self._export, values)

    def __repr__(self) -> str:
        return f"<exported {self.signature} of {self._owner.source}>"


class InterfaceExports:
    """The functions of one exported interface, as attributes (``stock.summarize``)."""

    def __init__(self, name: str, functions: Mapping[str, ExportedFunction]) -> None:
        self.name = name
        self._functions = dict(functions)

    def __getattr__(self, name: str) -> ExportedFunction:
        for function_name, function in self._functions.items():
            if field_key(function_name) == name:
                return function
        raise AttributeError(f"{self.name} exports no function {name}")

    def __dir__(self) -> list[str]:
        return sorted(field_key(n) for n in self._functions)


class LoadedComponent:
    """A compiled, instantiated component; exported functions by name or as attributes.

    ``c.function("summarize")`` or ``c["example:inventory/stock@0.1.0#summarize"]`` or
    ``c.stock.summarize`` give an :class:`ExportedFunction`.
    """

    def __init__(self, artifact: Artifact, wasi: WasiOptions | None = None) -> None:
        if artifact.kind is not WasmKind.COMPONENT:
            raise ComponentError(
                f"{artifact.source}: is a core module; load() calls component exports "
                "(run it as a command with `hatch-wasm-oci run`)"
            )
        self.source = artifact.source
        self.digest = artifact.digest
        self.imports = artifact.imports
        self._wasi = wasi or WasiOptions()
        interruptible = self._wasi.timeout is not None
        self._component: wc.Component = compile_binary(
            artifact.wasm,
            artifact.digest,
            component=True,
            cache=cache_root(),
            interruptible=interruptible,
        )
        exports = _exports(self._component, engine(interruptible))
        self.functions: dict[str, ExportedFunction] = {
            e.full_name: ExportedFunction(self, e) for e in exports
        }
        self._stderr = StderrTail(self._wasi.stderr_lines)
        self._store: wasmtime.Store | None = None
        self._instance: wc.Instance | None = None
        self._instantiate()

    def _instantiate(self) -> None:
        self._store, self._instance = instantiate_component(
            self._component, self.imports, self._wasi, self._stderr, self.source
        )

    def _call(self, export: _Export, values: Sequence[Any]) -> Any:
        if self._instance is None or self._store is None:
            self._instantiate()
        assert self._instance is not None and self._store is not None
        store, instance = self._store, self._instance
        parent = None
        if export.instance is not None:
            parent = instance.get_export_index(store, export.instance)
        index = instance.get_export_index(store, export.name, parent)
        func = instance.get_func(store, index) if index is not None else None
        if func is None:  # pragma: no cover - listed from the component's own type
            raise UnknownExportError(f"{self.source}: {export.full_name} is not a function")
        params = export.type.params
        lowered = [marshal.lower(v, t) for v, (_, t) in zip(values, params, strict=True)]
        if self._wasi.timeout is not None:
            store.set_epoch_deadline(deadline_ticks(self._wasi.timeout))
        def invoke() -> Any:
            result = func(store, *lowered)
            func.post_return(store)
            return result

        try:
            result = call_guest(invoke)
        except wasmtime.ExitTrap as exc:
            self._instance = self._store = None
            self._stderr.take()
            raise GuestExit(export.full_name, exc.code) from None
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            self._instance = self._store = None  # a trapped instance cannot be entered again
            raise trap_error(
                export.full_name, exc, self._stderr.take(), self._wasi.timeout
            ) from None
        except BaseException:
            self._instance = self._store = None  # interrupted: the guest may still be running
            raise
        self._stderr.take()
        return None if export.type.result is None else marshal.lift(result, export.type.result)

    def streaming_stderr(self) -> contextlib.AbstractContextManager[None]:
        """Within the block, the guest's stderr reaches ours as it is written."""
        return self._stderr.follow()

    def function(self, name: str) -> ExportedFunction:
        """The export ``name``: its full name (``ns:pkg/iface@v#f``), ``iface.f``, ``iface#f``,
        wasmtime's ``ns:pkg/iface.f@v``, or ``f`` alone when only one export has that name."""
        if name in self.functions:
            return self.functions[name]
        qualifier, function = _split_name(name)
        matches = [
            f
            for f in self.functions.values()
            if f._export.name == function
            and (qualifier is None or _matches(f._export.instance, qualifier))
        ]
        roots = [f for f in matches if f._export.instance is None]
        if qualifier is None and roots:
            return roots[0]
        if len(matches) == 1:
            return matches[0]
        listing = self.export_listing()
        if matches:
            names = ", ".join(f.name for f in matches)
            raise UnknownExportError(f"{self.source}: {name} is ambiguous ({names})")
        raise UnknownExportError(f"{self.source}: no exported function {name}; exports: {listing}")

    def export_listing(self) -> str:
        """Every exported function in WIT syntax, full names, separated by ``; ``; without
        componentize-py's internal ``exports#init`` (its runtime's setup, not the world's)."""
        return "; ".join(
            f.signature if f._export.instance is None else f"{f._export.instance}#{f.signature}"
            for f in self.functions.values()
            if (f._export.instance, f._export.name) != COMPONENTIZE_PY_INIT
        )

    def __getitem__(self, name: str) -> ExportedFunction:
        return self.function(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        kebab = name.replace("_", "-")
        roots = [f for f in self.functions.values() if f._export.instance is None]
        for function in roots:
            if function._export.name == kebab:
                return function
        interfaces: dict[str, dict[str, ExportedFunction]] = {}
        for function in self.functions.values():
            instance = function._export.instance
            if instance is not None and _interface_short(instance) == kebab:
                interfaces.setdefault(instance, {})[function._export.name] = function
        if len(interfaces) == 1:
            ((instance, functions),) = interfaces.items()
            return InterfaceExports(instance, functions)
        raise AttributeError(f"{self.source} exports no function or interface {name}")

    def __dir__(self) -> list[str]:
        names = {
            field_key(f._export.name) for f in self.functions.values() if not f._export.instance
        }
        names |= {
            field_key(_interface_short(i))
            for f in self.functions.values()
            if (i := f._export.instance)
        }
        return sorted(names | set(super().__dir__()))

    def __repr__(self) -> str:
        return f"<component {self.source} ({len(self.functions)} exported functions)>"


def _split_name(name: str) -> tuple[str | None, str]:
    if "#" in name:
        qualifier, _, function = name.rpartition("#")
        return qualifier, function
    wasmtime_form = re.fullmatch(r"(.*/[^/.@]+)\.([^./@]+)(@[^/]+)?", name)
    if wasmtime_form:
        return wasmtime_form.group(1) + (wasmtime_form.group(3) or ""), wasmtime_form.group(2)
    if "." in name:
        qualifier, _, function = name.rpartition(".")
        return qualifier, function
    return None, name


def _matches(instance: str | None, qualifier: str) -> bool:
    """``stock``, ``example:inventory/stock`` or the full name all name the same interface."""
    if instance is None:
        return False
    without_version = instance.split("@")[0]
    return qualifier in (instance, without_version, _interface_short(instance))


def instantiate_component(
    component: wc.Component,
    imports: Sequence[str],
    wasi: WasiOptions,
    stderr: StderrTail,
    where: str,
) -> tuple[wasmtime.Store, wc.Instance]:
    """Instantiate on wasmtime's WASI 0.2 host (plus wasi:http when imported)."""
    eng = engine(interruptible=wasi.timeout is not None)
    linker = wc.Linker(eng)
    linker.add_wasip2()
    store = wasmtime.Store(eng)
    store.set_wasi(wasi.config(stderr))
    if wasi.timeout is not None:
        store.set_epoch_deadline(deadline_ticks(wasi.timeout))
    if any(name.startswith("wasi:http/") for name in imports):
        linker.add_wasi_http()
        store.set_wasi_http()
    try:
        return store, linker.instantiate(store, component)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
        raise instantiate_error(where, exc, stderr.take()) from None


_IMPORT_NAME = re.compile(r"(?:import|instance|named) [`\"]([^`\"]+)[`\"]")


def instantiate_error(source: str, exc: BaseException, stderr: str) -> ComponentError:
    """One line for a failed instantiation: the import no host provides, or the trap."""
    text = str(exc)
    if "matching implementation was not found" in text or "was not found in the linker" in text:
        names = _IMPORT_NAME.findall(text)
        name = names[0] if names else trap_message(exc)
        return ComponentError(f"{source}: imports {name}, which the WASI 0.2 host does not provide")
    return trap_error(f"{source}: instantiation", exc, stderr)


def load(
    target: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    dirs: Mapping[str, str] | None = None,
    offline: bool = False,
    plain_http: bool = False,
    ca_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> LoadedComponent:
    """Load a component from a ``.wasm``, an OCI layout (``DIR[:TAG]``) or a registry reference.

    ``env`` and ``dirs`` (host path -> guest path) are all the guest sees of the host;
    ``timeout`` (seconds) interrupts a call that runs longer (ComponentTrap).
    Registry references use the same credentials as ``pull``; their blobs are kept in the
    local content store, and compiled code in the compiled cache.
    """
    try:
        check_timeout(timeout)
    except ValueError as exc:
        raise ComponentError(f"timeout {exc}") from None
    options = RegistryOptions(
        plain_http=plain_http,
        ca_file=Path(ca_file) if ca_file is not None else None,
        offline=offline,
    )
    artifact = resolve(target, options)
    wasi = WasiOptions(env=dict(env or {}), dirs=list((dirs or {}).items()), timeout=timeout)
    return LoadedComponent(artifact, wasi)
