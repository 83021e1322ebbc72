"""Between wasmtime-py and :mod:`hatch_wasm_oci.runtime.values`: types in, values both ways.

wasmtime-py represents records as attribute objects and leaves variant-like values untagged
when their cases hold values of distinct Python classes; this module mirrors that rule
(``_tagged``) so values go in exactly as wasmtime-py expects and come out canonical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import wasmtime.component as wc

from hatch_wasm_oci.errors import ComponentError
from hatch_wasm_oci.runtime.types import (
    EnumType,
    FlagsType,
    ListType,
    OptionType,
    Primitive,
    RecordType,
    ResourceType,
    ResultType,
    TupleType,
    UnsupportedType,
    VariantType,
    WitType,
)
from hatch_wasm_oci.runtime.values import Err, Ok, Some, Variant

_PRIMITIVES: dict[type, str] = {
    wc.Bool: "bool",
    wc.S8: "s8",
    wc.S16: "s16",
    wc.S32: "s32",
    wc.S64: "s64",
    wc.U8: "u8",
    wc.U16: "u16",
    wc.U32: "u32",
    wc.U64: "u64",
    wc.F32: "f32",
    wc.F64: "f64",
    wc.Char: "char",
    wc.String: "string",
}
_NAMEABLE = (wc.RecordType, wc.VariantType, wc.EnumType, wc.FlagsType)


class TypeNames:
    """Names the component gives its types (``item``), found by wasmtime's type equality."""

    def __init__(self, named: Sequence[tuple[str, Any]] = ()) -> None:
        self.named = [(name, ty) for name, ty in named if isinstance(ty, _NAMEABLE)]

    def name_of(self, ty: Any) -> str | None:
        for name, candidate in self.named:
            if type(candidate) is type(ty) and candidate == ty:
                return name
        return None


def wit_type(ty: Any, names: TypeNames) -> WitType:
    """The :mod:`types` form of a wasmtime-py ``ValType``."""
    kind = _PRIMITIVES.get(type(ty))
    if kind is not None:
        return Primitive(kind)
    if isinstance(ty, wc.ListType):
        return ListType(wit_type(ty.element, names))
    if isinstance(ty, wc.TupleType):
        return TupleType(tuple(wit_type(t, names) for t in ty.elements))
    if isinstance(ty, wc.OptionType):
        return OptionType(wit_type(ty.payload, names))
    if isinstance(ty, wc.ResultType):
        ok, err = ty.ok, ty.err
        return ResultType(
            None if ok is None else wit_type(ok, names),
            None if err is None else wit_type(err, names),
        )
    if isinstance(ty, wc.RecordType):
        fields = tuple((n, wit_type(t, names)) for n, t in ty.fields)
        return RecordType(fields, names.name_of(ty))
    if isinstance(ty, wc.VariantType):
        cases = tuple((n, None if t is None else wit_type(t, names)) for n, t in ty.cases)
        return VariantType(cases, names.name_of(ty))
    if isinstance(ty, wc.EnumType):
        return EnumType(tuple(ty.names), names.name_of(ty))
    if isinstance(ty, wc.FlagsType):
        return FlagsType(tuple(ty.names), names.name_of(ty))
    if isinstance(ty, wc.OwnType):
        return ResourceType("own")
    if isinstance(ty, wc.BorrowType):
        return ResourceType("borrow")
    return UnsupportedType(type(ty).__name__.removesuffix("Type").lower())


# -- wasmtime-py's representation of values ------------------------------------------------------


def _classes(ty: WitType) -> set[type]:
    """The Python classes wasmtime-py uses for values of ``ty`` (its ``add_classes``)."""
    if isinstance(ty, Primitive):
        if ty.kind == "bool":
            return {bool}
        if ty.kind in ("f32", "f64"):
            return {float}
        return {str} if ty.kind in ("char", "string") else {int}
    if isinstance(ty, ListType):
        return {bytes} if ty.element == Primitive("u8") else {list}
    if isinstance(ty, TupleType):
        return {tuple}
    if isinstance(ty, RecordType):
        return {wc.Record}
    if isinstance(ty, EnumType):
        return {str}
    if isinstance(ty, FlagsType):
        return {set}
    if isinstance(ty, (VariantType, OptionType, ResultType)):
        if _tagged(ty):
            return {wc.Variant}
        out: set[type] = set()
        for _, payload in _cases(ty):
            out |= {object} if payload is None else _classes(payload)
        return out
    return {wc.ResourceAny, wc.ResourceHost}


def _cases(ty: VariantType | OptionType | ResultType) -> tuple[tuple[str, WitType | None], ...]:
    if isinstance(ty, OptionType):
        return (("none", None), ("some", ty.payload))
    if isinstance(ty, ResultType):
        return (("ok", ty.ok), ("err", ty.err))
    return ty.cases


def _tagged(ty: VariantType | OptionType | ResultType) -> bool:
    seen: set[type] = set()
    for _, payload in _cases(ty):
        case = {object} if payload is None else _classes(payload)
        if case & seen:
            return True
        seen |= case
    return False


def lower(value: Any, ty: WitType) -> Any:
    """A canonical value (checked by :func:`values.check`) as wasmtime-py takes it."""
    if isinstance(ty, Primitive | EnumType):
        return value
    if isinstance(ty, ListType):
        if isinstance(value, bytes):
            return value
        return [lower(v, ty.element) for v in value]
    if isinstance(ty, TupleType):
        return tuple(lower(v, t) for v, t in zip(value, ty.elements, strict=True))
    if isinstance(ty, RecordType):
        record = wc.Record()
        for name, field_type in ty.fields:
            setattr(record, name, lower(value[name], field_type))
        return record
    if isinstance(ty, FlagsType):
        return set(value)
    if isinstance(ty, (VariantType, OptionType, ResultType)):
        case, payload = _case_of(value, ty)
        payload_type = dict(_cases(ty))[case]
        inner = None if payload_type is None else lower(payload, payload_type)
        if _tagged(ty):
            return wc.Variant(case, inner)
        if _untagged_case(ty, inner) != case:
            raise ComponentError(
                f"wasmtime-py cannot pass case {case} of {ty.wit()}: it would take this value "
                f"for case {_untagged_case(ty, inner)} (a bool is also an int)"
            )
        return inner
    return value


def _untagged_case(ty: VariantType | OptionType | ResultType, value: Any) -> str | None:
    """The case wasmtime-py picks for an untagged value: the first whose classes match."""
    for case, payload_type in _cases(ty):
        if payload_type is None:
            if value is None:
                return case
        elif isinstance(value, tuple(_classes(payload_type))):
            return case
    return None


def _case_of(value: Any, ty: VariantType | OptionType | ResultType) -> tuple[str, Any]:
    if isinstance(ty, OptionType):
        if value is None:
            return "none", None
        return "some", value.value if isinstance(value, Some) else value
    if isinstance(ty, ResultType):
        return ("ok" if isinstance(value, Ok) else "err"), value.value
    return value.case, value.value


def lift(value: Any, ty: WitType) -> Any:
    """A value wasmtime-py returned, as the canonical Python value of ``ty``."""
    if isinstance(ty, Primitive | EnumType):
        return value
    if isinstance(ty, ListType):
        if isinstance(value, bytes):
            return value
        return [lift(v, ty.element) for v in value]
    if isinstance(ty, TupleType):
        return tuple(lift(v, t) for v, t in zip(value, ty.elements, strict=True))
    if isinstance(ty, RecordType):
        return {name: lift(getattr(value, name), t) for name, t in ty.fields}
    if isinstance(ty, FlagsType):
        return set(value)
    if isinstance(ty, (VariantType, OptionType, ResultType)):
        case, payload = _lift_case(value, ty)
        payload_type = dict(_cases(ty))[case]
        inner = None if payload_type is None else lift(payload, payload_type)
        if isinstance(ty, OptionType):
            if case == "none":
                return None
            return Some(inner) if isinstance(ty.payload, OptionType) else inner
        if isinstance(ty, ResultType):
            return Ok(inner) if case == "ok" else Err(inner)
        return Variant(case, inner)
    return value


def _lift_case(value: Any, ty: VariantType | OptionType | ResultType) -> tuple[str, Any]:
    if _tagged(ty):
        return value.tag, value.payload
    cases = _cases(ty)
    for case, payload_type in cases:
        if payload_type is None and value is None:
            return case, None
    for case, payload_type in cases:
        if payload_type is not None and type(value) in _classes(payload_type):
            return case, value
    for case, payload_type in cases:
        if payload_type is not None and isinstance(value, tuple(_classes(payload_type))):
            return case, value
    raise ComponentError(f"wasmtime returned {type(value).__name__} for {ty.wit()}")
