"""The error types of hatch-wasm-oci: each carries a one-line message for the user."""

from __future__ import annotations

import re
from pathlib import Path

_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.?)", re.S)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without terminal escape sequences; other control characters become spaces."""
    return _CONTROL.sub(" ", _ESCAPE.sub("", text))


class WasmOciError(Exception):
    """Base of every error this package raises on purpose; ``str()`` is one line for the user."""


class WasmFormatError(WasmOciError):
    """A file is not a well-formed Wasm module, component or WIT package."""

    def __init__(self, path: str | Path, message: str, offset: int | None = None) -> None:
        self.path = str(path)
        self.reason = message
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.path}: {message}{where}")


class LayoutError(WasmOciError):
    """An OCI image layout cannot be written, or one on disk breaks the rules."""


class ArtifactError(LayoutError):
    """A manifest, index, config or descriptor breaks the OCI or Wasm OCI artifact rules.

    Raised by the one artifact model in ``hatch_wasm_oci.oci``; ``verify`` and ``pull`` report
    the same message for the same document.
    """


class ConfigurationError(WasmOciError):
    """User configuration is invalid; ``problems`` lists every problem, each with its TOML path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class RegistryError(WasmOciError):
    """A registry operation failed; the message says what the registry answered, never a secret.

    Registry-supplied text may hold terminal escape sequences: the message is made printable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


class ComponentError(WasmOciError):
    """Loading, instantiating or calling a component failed.

    Component-supplied text (trap messages, guest exceptions) is made printable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


class ValueTypeError(ComponentError, TypeError):
    """A value (Python or WAVE text) does not fit the type the component declares for it."""


class UnknownExportError(ComponentError, LookupError):
    """No exported function has the name asked for; the message lists the exports."""


class ComponentTrap(ComponentError):
    """The component trapped (or its guest language raised) while running."""
