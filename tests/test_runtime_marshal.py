"""Values as wasmtime-py takes and returns them (its untagged variants), no component needed."""

from __future__ import annotations

from typing import Any

import pytest
import wasmtime.component as wc

from hatch_wasm_oci.errors import ComponentError
from hatch_wasm_oci.runtime.marshal import lift, lower
from hatch_wasm_oci.runtime.types import (
    ListType,
    OptionType,
    Primitive,
    RecordType,
    ResultType,
    VariantType,
)
from hatch_wasm_oci.runtime.values import Err, Ok, Some, Variant

U32 = Primitive("u32")
STRING = Primitive("string")


def test_untagged_and_tagged_variant_likes() -> None:
    result = ResultType(RecordType((("a", U32),)), STRING)  # record vs str: untagged
    lowered = lower(Ok({"a": 1}), result)
    assert isinstance(lowered, wc.Record)
    record: Any = lowered  # wasmtime sets a Record's fields as attributes at run time
    assert record.a == 1
    assert lift(lowered, result) == Ok({"a": 1})
    assert lower(Err("no"), result) == "no" and lift("no", result) == Err("no")
    same = ResultType(STRING, STRING)  # both str: tagged
    assert lower(Err("x"), same) == wc.Variant("err", "x")
    assert lift(wc.Variant("ok", "y"), same) == Ok("y")
    nested = OptionType(OptionType(U32))  # none twice: tagged
    assert lower(Some(None), nested) == wc.Variant("some", None)
    assert lift(wc.Variant("some", None), nested) == Some(None)
    assert lower(None, OptionType(U32)) is None and lift(7, OptionType(U32)) == 7
    assert lower(b"\x01", ListType(Primitive("u8"))) == b"\x01"


def test_a_bool_case_after_an_int_case_is_refused_not_sent_as_the_int() -> None:
    ty = VariantType((("count", U32), ("flag", Primitive("bool"))))
    assert lower(Variant("count", 1), ty) == 1
    with pytest.raises(ComponentError, match=r"cannot pass case flag .* for case count"):
        lower(Variant("flag", True), ty)
    assert lift(True, ty) == Variant("flag", True)
