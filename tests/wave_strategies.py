"""Hypothesis strategies: WIT types, and values of a given type (WAVE and marshalling tests)."""

from __future__ import annotations

from functools import partial
from typing import Any

from hypothesis import strategies as st

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
from hatch_wasm_oci.runtime.values import Err, Ok, Some, Variant

_names = st.from_regex(r"[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,4}){0,2}", fullmatch=True)


def wit_types() -> st.SearchStrategy[WitType]:
    leaves = st.sampled_from(
        [Primitive(k) for k in ("bool", "char", "string", "f32", "f64", *INTEGER_RANGES)]
    )

    def compound(inner: st.SearchStrategy[WitType]) -> st.SearchStrategy[WitType]:
        unique = st.lists(_names, min_size=1, max_size=4, unique=True)
        return st.one_of(
            inner.map(ListType),
            st.lists(inner, min_size=1, max_size=3).map(lambda ts: TupleType(tuple(ts))),
            inner.map(OptionType),
            st.tuples(st.none() | inner, st.none() | inner).map(lambda p: ResultType(*p)),
            unique.flatmap(
                lambda ns: st.lists(inner, min_size=len(ns), max_size=len(ns)).map(
                    lambda ts: RecordType(tuple(zip(ns, ts, strict=True)))
                )
            ),
            unique.flatmap(
                lambda ns: st.lists(st.none() | inner, min_size=len(ns), max_size=len(ns)).map(
                    lambda ts: VariantType(tuple(zip(ns, ts, strict=True)))
                )
            ),
            unique.map(lambda ns: EnumType(tuple(ns))),
            unique.map(lambda ns: FlagsType(tuple(ns))),
        )

    return st.recursive(leaves, compound, max_leaves=6)


def wit_values(ty: WitType) -> st.SearchStrategy[Any]:
    if isinstance(ty, Primitive):
        if ty.kind == "bool":
            return st.booleans()
        if ty.kind in INTEGER_RANGES:
            low, high = INTEGER_RANGES[ty.kind]
            return st.integers(low, high)
        if ty.kind == "f32":
            return st.floats(width=32, allow_nan=False)
        if ty.kind == "f64":
            return st.floats(allow_nan=False)
        alphabet = st.characters(exclude_categories=["Cs"])
        if ty.kind == "char":
            return alphabet
        return st.text(alphabet, max_size=8)
    if isinstance(ty, ListType):
        items = st.lists(wit_values(ty.element), max_size=3)
        return items.map(bytes) if ty.element == Primitive("u8") else items
    if isinstance(ty, TupleType):
        return st.tuples(*(wit_values(t) for t in ty.elements))
    if isinstance(ty, OptionType):
        inner = wit_values(ty.payload)
        if isinstance(ty.payload, OptionType):
            inner = inner.map(Some)
        return st.none() | inner
    if isinstance(ty, ResultType):
        ok = st.just(Ok()) if ty.ok is None else wit_values(ty.ok).map(Ok)
        err = st.just(Err()) if ty.err is None else wit_values(ty.err).map(Err)
        return ok | err
    if isinstance(ty, RecordType):
        return st.fixed_dictionaries({n: wit_values(t) for n, t in ty.fields})
    if isinstance(ty, VariantType):
        return st.one_of(
            *(
                st.just(Variant(n))
                if t is None
                else wit_values(t).map(partial(Variant, n))
                for n, t in ty.cases
            )
        )
    if isinstance(ty, EnumType):
        return st.sampled_from(ty.names)
    assert isinstance(ty, FlagsType)
    return st.sets(st.sampled_from(ty.names))
