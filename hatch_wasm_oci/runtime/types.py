"""The component value types of exported functions, independent of wasmtime, written as WIT.

A type that the component exports under a name (``record item``) keeps that name, so a
signature reads ``reserve: func(item: item, amount: u32) -> result<item, string>``; anonymous
structural types are written inline (``record { sku: string }``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

INTEGER_RANGES = {
    "u8": (0, (1 << 8) - 1),
    "u16": (0, (1 << 16) - 1),
    "u32": (0, (1 << 32) - 1),
    "u64": (0, (1 << 64) - 1),
    "s8": (-(1 << 7), (1 << 7) - 1),
    "s16": (-(1 << 15), (1 << 15) - 1),
    "s32": (-(1 << 31), (1 << 31) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1),
}
FLOATS = ("f32", "f64")
PRIMITIVES = frozenset({"bool", "char", "string", *INTEGER_RANGES, *FLOATS})


@dataclass(frozen=True)
class Primitive:
    """``bool``, ``s8`` .. ``u64``, ``f32``, ``f64``, ``char`` or ``string``."""

    kind: str

    def wit(self) -> str:
        return self.kind


@dataclass(frozen=True)
class ListType:
    element: WitType

    def wit(self) -> str:
        return f"list<{self.element.wit()}>"


@dataclass(frozen=True)
class TupleType:
    elements: tuple[WitType, ...]

    def wit(self) -> str:
        return f"tuple<{', '.join(e.wit() for e in self.elements)}>"


@dataclass(frozen=True)
class OptionType:
    payload: WitType

    def wit(self) -> str:
        return f"option<{self.payload.wit()}>"


@dataclass(frozen=True)
class ResultType:
    ok: WitType | None
    err: WitType | None

    def wit(self) -> str:
        if self.ok is None and self.err is None:
            return "result"
        ok = self.ok.wit() if self.ok is not None else "_"
        return f"result<{ok}>" if self.err is None else f"result<{ok}, {self.err.wit()}>"


@dataclass(frozen=True)
class RecordType:
    fields: tuple[tuple[str, WitType], ...]
    name: str | None = field(default=None, compare=False)

    def wit(self) -> str:
        if self.name:
            return self.name
        return "record { " + ", ".join(f"{n}: {t.wit()}" for n, t in self.fields) + " }"


@dataclass(frozen=True)
class VariantType:
    cases: tuple[tuple[str, WitType | None], ...]
    name: str | None = field(default=None, compare=False)

    def wit(self) -> str:
        if self.name:
            return self.name
        cases = (n if t is None else f"{n}({t.wit()})" for n, t in self.cases)
        return "variant { " + ", ".join(cases) + " }"


@dataclass(frozen=True)
class EnumType:
    names: tuple[str, ...]
    name: str | None = field(default=None, compare=False)

    def wit(self) -> str:
        return self.name or "enum { " + ", ".join(self.names) + " }"


@dataclass(frozen=True)
class FlagsType:
    names: tuple[str, ...]
    name: str | None = field(default=None, compare=False)

    def wit(self) -> str:
        return self.name or "flags { " + ", ".join(self.names) + " }"


@dataclass(frozen=True)
class ResourceType:
    """A handle (``own<r>`` or ``borrow<r>``): not expressible as a plain value."""

    handle: str
    name: str | None = field(default=None, compare=False)

    def wit(self) -> str:
        inner = self.name or "resource"
        return inner if self.handle == "own" else f"borrow<{inner}>"


@dataclass(frozen=True)
class UnsupportedType:
    """A type no plain value can express (future, stream, error-context)."""

    kind: str

    def wit(self) -> str:
        return self.kind


WitType = (
    Primitive
    | ListType
    | TupleType
    | OptionType
    | ResultType
    | RecordType
    | VariantType
    | EnumType
    | FlagsType
    | ResourceType
    | UnsupportedType
)


@dataclass(frozen=True)
class FunctionType:
    """An exported function: its name as WIT writes it, named parameters, optional result."""

    name: str
    params: tuple[tuple[str, WitType], ...]
    result: WitType | None

    def wit(self) -> str:
        """``name: func(a: u32, b: string) -> result<item, string>``."""
        params = ", ".join(f"{n}: {t.wit()}" for n, t in self.params)
        arrow = f" -> {self.result.wit()}" if self.result is not None else ""
        return f"{self.name}: func({params}){arrow}"
