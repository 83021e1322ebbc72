"""Plain Python values for component values, checked against the component's types.

==================  ==========================================================================
WIT                 Python
==================  ==========================================================================
bool, integers      ``bool``, ``int`` (range-checked; ``bool`` is not an integer)
f32, f64            ``float`` (an ``int`` is accepted)
char, string        ``str`` (one code point for ``char``)
list<T>             ``list`` (``bytes`` for ``list<u8>``; a list of ints is accepted)
tuple<...>          ``tuple``
record              ``dict`` keyed by field name (``unit-price-cents`` or ``unit_price_cents``);
                    ``option`` fields may be left out
variant             :class:`Variant` (a ``str`` for a case without payload)
enum                ``str``
flags               ``set`` of ``str``
option<T>           ``None`` or the value; :class:`Some` wraps it when ``T`` is an option
result<T, E>        :class:`Ok` or :class:`Err`
==================  ==========================================================================
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from hatch_wasm_oci.errors import ComponentError, ValueTypeError
from hatch_wasm_oci.runtime.types import (
    INTEGER_RANGES,
    EnumType,
    FlagsType,
    ListType,
    OptionType,
    Primitive,
    RecordType,
    ResultType,
    TupleType,
    VariantType,
    WitType,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Ok(Generic[T]):
    """The ``ok`` case of a ``result``; ``value`` is ``None`` when it has no payload."""

    value: T = None  # type: ignore[assignment]

    def unwrap(self) -> T:
        return self.value


@dataclass(frozen=True)
class Err(Generic[T]):
    """The ``err`` case of a ``result``; :meth:`unwrap` raises :class:`ResultError`."""

    value: T = None  # type: ignore[assignment]

    def unwrap(self) -> NoReturn:
        raise ResultError(self.value)


class ResultError(ComponentError):
    """An ``err`` result unwrapped; ``value`` is its payload."""

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"the component returned err({value!r})")


@dataclass(frozen=True)
class Some(Generic[T]):
    """``some(value)`` where a bare ``value`` would be ambiguous (an option of an option)."""

    value: T


@dataclass(frozen=True)
class Variant:
    """A ``variant`` case and its payload (``None`` when the case has none)."""

    case: str
    value: Any = None


def describe(value: object) -> str:
    """A short description of a Python value for error messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _mismatch(where: str, ty: WitType, value: object, why: str = "") -> NoReturn:
    detail = f" ({why})" if why else ""
    raise ValueTypeError(f"{where}: expected {ty.wit()}, got {describe(value)}{detail}")


def field_key(name: str) -> str:
    """The Python spelling of a WIT name: ``unit-price-cents`` -> ``unit_price_cents``."""
    return name.replace("-", "_")


def f32_fits(value: float) -> bool:
    """Whether ``value`` survives the round trip to a 32-bit float without becoming infinite."""
    if not math.isfinite(value):
        return True
    try:
        struct.pack("<f", value)
    except OverflowError:
        return False
    return True


def as_f32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float (what a component receives)."""
    if not math.isfinite(value):
        return value
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def check(value: object, ty: WitType, where: str) -> Any:
    """``value`` as the canonical Python value of ``ty``; ValueTypeError naming ``where``."""
    if isinstance(ty, Primitive):
        return _check_primitive(value, ty, where)
    if isinstance(ty, ListType):
        return _check_list(value, ty, where)
    if isinstance(ty, TupleType):
        if not isinstance(value, (tuple, list)):
            _mismatch(where, ty, value)
        if len(value) != len(ty.elements):
            _mismatch(where, ty, value, f"{len(value)} elements, not {len(ty.elements)}")
        pairs = enumerate(zip(value, ty.elements, strict=True))
        return tuple(check(v, t, f"{where}[{i}]") for i, (v, t) in pairs)
    if isinstance(ty, RecordType):
        return _check_record(value, ty, where)
    if isinstance(ty, OptionType):
        if value is None:
            return None
        if isinstance(value, Some):
            value = value.value
        elif isinstance(ty.payload, OptionType):
            _mismatch(where, ty, value, "wrap the inner option in Some(...)")
        inner = check(value, ty.payload, where)
        return Some(inner) if isinstance(ty.payload, OptionType) else inner
    if isinstance(ty, ResultType):
        if isinstance(value, (Ok, Err)):
            payload = ty.ok if isinstance(value, Ok) else ty.err
            case = "ok" if isinstance(value, Ok) else "err"
            if payload is None:
                if value.value is not None:
                    _mismatch(where, ty, value, f"{case} takes no payload")
                return type(value)()
            return type(value)(check(value.value, payload, f"{where}.{case}"))
        _mismatch(where, ty, value, "use Ok(...) or Err(...)")
    if isinstance(ty, VariantType):
        return _check_variant(value, ty, where)
    if isinstance(ty, EnumType):
        if not isinstance(value, str):
            _mismatch(where, ty, value)
        if value not in ty.names:
            _mismatch(where, ty, value, "cases: " + ", ".join(ty.names))
        return value
    if isinstance(ty, FlagsType):
        if isinstance(value, str) or not isinstance(value, (set, frozenset, list, tuple)):
            _mismatch(where, ty, value, "give a set of flag names")
        unknown = sorted(str(v) for v in value if v not in ty.names)
        if unknown:
            _mismatch(where, ty, value, f"unknown flag {unknown[0]}; flags: {', '.join(ty.names)}")
        return set(value)
    raise ValueTypeError(f"{where}: values of type {ty.wit()} cannot be passed from Python")


def _check_primitive(value: object, ty: Primitive, where: str) -> Any:
    kind = ty.kind
    if kind == "bool":
        if not isinstance(value, bool):
            _mismatch(where, ty, value)
        return value
    if kind in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            _mismatch(where, ty, value)
        low, high = INTEGER_RANGES[kind]
        if not low <= value <= high:
            _mismatch(where, ty, value, f"out of range {low}..{high}")
        return value
    if kind in ("f32", "f64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _mismatch(where, ty, value)
        try:
            number = float(value)
        except OverflowError:
            _mismatch(where, ty, value, "out of range")
        if kind == "f32":
            if not f32_fits(number):
                _mismatch(where, ty, value, "out of range for f32")
            return as_f32(number)
        return number
    if not isinstance(value, str):
        _mismatch(where, ty, value)
    if kind == "char" and len(value) != 1:
        _mismatch(where, ty, value, "a char is exactly one character")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        _mismatch(where, ty, value, "lone surrogates are not Unicode scalar values")
    return value


def _check_list(value: object, ty: ListType, where: str) -> Any:
    is_bytes = ty.element == Primitive("u8")
    if is_bytes and isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, (list, tuple)):
        _mismatch(where, ty, value)
    items = [check(v, ty.element, f"{where}[{i}]") for i, v in enumerate(value)]
    return bytes(items) if is_bytes else items


def _check_record(value: object, ty: RecordType, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _mismatch(where, ty, value, "give a dict of its fields")
    given = {field_key(str(k)): k for k in value}
    out: dict[str, Any] = {}
    for name, field_type in ty.fields:
        key = given.pop(field_key(name), None)
        if key is None:
            if isinstance(field_type, OptionType):
                out[name] = None
                continue
            _mismatch(where, ty, value, f"missing field {name}")
        out[name] = check(value[key], field_type, f"{where}.{name}")
    if given:
        extra = sorted(str(k) for k in given.values())
        fields = ", ".join(n for n, _ in ty.fields)
        _mismatch(where, ty, value, f"unknown field {extra[0]}; fields: {fields}")
    return out


def _check_variant(value: object, ty: VariantType, where: str) -> Variant:
    cases = dict(ty.cases)
    if isinstance(value, str):
        value = Variant(value)
    if not isinstance(value, Variant):
        _mismatch(where, ty, value, "use Variant(case, value)")
    if value.case not in cases:
        _mismatch(where, ty, value, "cases: " + ", ".join(cases))
    payload = cases[value.case]
    if payload is None:
        if value.value is not None:
            _mismatch(where, ty, value, f"case {value.case} takes no payload")
        return Variant(value.case)
    return Variant(value.case, check(value.value, payload, f"{where}.{value.case}"))
