"""WAVE parsing and printing, and Python value checking, against component types (no wasmtime)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hatch_wasm_oci.errors import ValueTypeError
from hatch_wasm_oci.runtime import wave
from hatch_wasm_oci.runtime.types import (
    EnumType,
    FlagsType,
    FunctionType,
    ListType,
    OptionType,
    Primitive,
    RecordType,
    ResultType,
    TupleType,
    VariantType,
    WitType,
)
from hatch_wasm_oci.runtime.values import Err, Ok, Some, Variant, check
from tests.wave_strategies import wit_types, wit_values

U32 = Primitive("u32")
STRING = Primitive("string")
ITEM = RecordType(
    (("sku", STRING), ("quantity", U32), ("unit-price-cents", Primitive("u64"))), "item"
)
COLOR = EnumType(("red", "green", "ok"), "color")
PERMS = FlagsType(("read", "write", "exec"), "perms")
SHAPE = VariantType((("circle", Primitive("f64")), ("dot", None), ("none", None)), "shape")
RESERVE = FunctionType("reserve", (("item", ITEM), ("amount", U32)), ResultType(ITEM, STRING))

# (type, WAVE text as the canonical writer prints it, the Python value)
CASES: list[tuple[WitType, str, Any]] = [
    (Primitive("bool"), "true", True),
    (Primitive("bool"), "false", False),
    (Primitive("u8"), "255", 255),
    (Primitive("s8"), "-128", -128),
    (Primitive("u16"), "65535", 65535),
    (Primitive("s16"), "-32768", -32768),
    (U32, "4294967295", 4294967295),
    (Primitive("s32"), "-2147483648", -2147483648),
    (Primitive("u64"), "18446744073709551615", 18446744073709551615),
    (Primitive("s64"), "-9223372036854775808", -9223372036854775808),
    (Primitive("f64"), "1.5", 1.5),
    (Primitive("f64"), "-2", -2.0),
    (Primitive("f64"), "inf", math.inf),
    (Primitive("f64"), "-inf", -math.inf),
    (Primitive("f64"), "1e+300", 1e300),
    (Primitive("f32"), "0.1", 0.10000000149011612),
    # The largest f32: shorter candidates such as 3.403e38 round past it and must be skipped.
    (Primitive("f32"), "3.4028235e+38", 3.4028234663852886e38),
    (Primitive("f32"), "-3.4028235e+38", -3.4028234663852886e38),
    (Primitive("char"), "'x'", "x"),
    (Primitive("char"), "'\\''", "'"),
    (Primitive("char"), "'😀'", "😀"),
    (STRING, '"a \\"b\\" \\\\ \\n\\t\\r"', 'a "b" \\ \n\t\r'),
    (STRING, '"\\u{7}"', "\x07"),
    (ListType(U32), "[1, 2, 3]", [1, 2, 3]),
    (ListType(U32), "[]", []),
    (ListType(Primitive("u8")), "[0, 255]", b"\x00\xff"),
    (TupleType((U32, STRING)), '(1, "x")', (1, "x")),
    (
        ITEM,
        '{sku: "apple", quantity: 3, unit-price-cents: 40}',
        {"sku": "apple", "quantity": 3, "unit-price-cents": 40},
    ),
    (RecordType(()), "{:}", {}),
    (COLOR, "green", "green"),
    (COLOR, "%ok", "ok"),
    (PERMS, "{read, exec}", {"read", "exec"}),
    (PERMS, "{}", set()),
    (SHAPE, "circle(2.5)", Variant("circle", 2.5)),
    (SHAPE, "dot", Variant("dot")),
    (SHAPE, "%none", Variant("none")),
    (OptionType(U32), "some(7)", 7),
    (OptionType(U32), "none", None),
    (OptionType(OptionType(U32)), "some(none)", Some(None)),
    (OptionType(OptionType(U32)), "some(some(1))", Some(1)),
    (ResultType(ITEM, STRING), 'err("no")', Err("no")),
    (ResultType(U32, None), "ok(1)", Ok(1)),
    (ResultType(None, None), "ok", Ok()),
    (ResultType(None, STRING), 'err("x")', Err("x")),
]


@pytest.mark.parametrize(("ty", "text", "value"), CASES, ids=[c[1] for c in CASES])
def test_every_kind_parses_and_prints(ty: WitType, text: str, value: Any) -> None:
    assert wave.parse(text, ty) == value
    assert wave.write(value, ty) == text
    assert check(value, ty, "v") == value


def test_nan_round_trips() -> None:
    assert math.isnan(wave.parse("nan", Primitive("f64")))
    assert wave.write(math.nan, Primitive("f32")) == "nan"


@pytest.mark.parametrize(
    ("ty", "text", "value"),
    [
        (OptionType(U32), "7", 7),  # bare some
        (ResultType(U32, STRING), "7", Ok(7)),  # bare ok
        (  # any order, trailing comma
            ITEM,
            '{unit-price-cents: 1, quantity: 2, sku: "a",}',
            {"sku": "a", "quantity": 2, "unit-price-cents": 1},
        ),
        (RecordType((("a", U32), ("b", OptionType(U32)))), "{a: 1}", {"a": 1, "b": None}),
        (ListType(U32), " [ 1 ,2, ] ", [1, 2]),
        (STRING, '"\\u{1F600}"', "😀"),
    ],
)
def test_accepted_shorthands(ty: WitType, text: str, value: Any) -> None:
    assert wave.parse(text, ty) == value


MISMATCHES = [
    (U32, '"x"', "column 1: expected an integer (u32), found '\"x\"'"),
    (U32, "-1", "column 1: expected u32 in 0..4294967295, found '-1'"),
    (Primitive("s8"), "128", "expected s8 in -128..127"),
    (U32, "1.0", "expected an integer (u32), found '1.0'"),
    (U32, "+1", "column 1: unexpected '+1'"),
    (U32, "01", "unexpected '01'"),
    (Primitive("f32"), "1e39", "expected a finite f32"),
    (Primitive("f64"), "x", "expected a number (f64)"),
    (Primitive("bool"), "1", "expected true or false (bool)"),
    (Primitive("char"), "'ab'", "exactly one character"),
    (Primitive("char"), '"a"', "expected a char like 'x'"),
    (STRING, "'a'", 'expected a string like "text"'),
    (STRING, '"\\q"', "invalid escape \\q"),
    (STRING, '"\\u{D800}"', "is not a char"),
    (ListType(U32), "[1 2]", "expected ',' or ']', found '2'"),
    (ListType(U32), "[1,", "found the end"),
    (TupleType((U32, U32)), "(1)", "expected 2 elements for tuple<u32, u32>"),
    (TupleType((U32,)), "(1, 2)", "expected ')' (tuple<u32> has 1 elements)"),
    (ITEM, '{sku: "a"}', "expected field quantity of item"),
    (ITEM, '{sku: "a", colour: 1}', "expected a field of item (sku, quantity, unit-price-cents)"),
    (ITEM, '{sku: "a", sku: "b"}', "each field once (sku is repeated)"),
    (ITEM, "{}", "'{:}' for an empty record, or fields"),
    (COLOR, "blue", "expected a case of color (red, green, ok)"),
    (PERMS, "{read, fly}", "expected a flag of perms (read, write, exec)"),
    (SHAPE, "square", "expected a case of shape (circle, dot, none)"),
    (SHAPE, "circle", "expected '(', found the end"),
    (SHAPE, "1", "expected a case of shape"),
    (OptionType(U32), "some()", "expected an integer (u32), found ')'"),
    (ResultType(None, STRING), "1", "expected ok or err for result<_, string>"),
    (ResultType(None, STRING), "ok(1)", "expected no payload (ok of result<_, string> has none)"),
    (U32, "1 2", "expected the end of the value, found '2'"),
]


@pytest.mark.parametrize(("ty", "text", "message"), MISMATCHES, ids=[m[1] for m in MISMATCHES])
def test_mismatch_messages(ty: WitType, text: str, message: str) -> None:
    with pytest.raises(ValueTypeError) as caught:
        wave.parse(text, ty)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    ty: WitType = U32
    for _ in range(150):
        ty = ListType(ty)
    with pytest.raises(ValueTypeError, match="nested too deeply"):
        wave.parse("[" * 150 + "]" * 150, ty)


def test_invocation_and_arguments() -> None:
    assert wave.parse_invocation("example:inventory/stock@0.1.0#summarize()") == (
        "example:inventory/stock@0.1.0#summarize",
        "",
        41,
    )
    name, args, _ = wave.parse_invocation(
        ' reserve({sku: "a", quantity: 1, unit-price-cents: 2}, 1) '
    )
    assert name == "reserve"
    assert wave.parse_arguments(args, RESERVE) == [
        {"sku": "a", "quantity": 1, "unit-price-cents": 2},
        1,
    ]
    signature = "reserve: func(item: item, amount: u32) -> result<item, string>"
    assert RESERVE.wit() == signature
    with pytest.raises(ValueTypeError) as caught:
        wave.parse_arguments('{sku: "a", quantity: 1, unit-price-cents: 2}', RESERVE)
    assert str(caught.value) == f"missing argument(s) amount; expected {signature}"
    with pytest.raises(ValueTypeError) as caught:
        wave.parse_arguments('{sku: "a", quantity: 1, unit-price-cents: 2}, 1, 2', RESERVE)
    assert str(caught.value) == f"too many arguments: reserve takes 2; expected {signature}"
    with pytest.raises(ValueTypeError) as caught:
        wave.parse_arguments('{sku: "a", quantity: 1, unit-price-cents: 2}, "x"', RESERVE)
    assert str(caught.value).startswith("argument amount: column 47: expected an integer (u32)")
    with pytest.raises(ValueTypeError, match="takes NAME\\(ARGS\\)"):
        wave.parse_invocation("summarize")


@pytest.mark.parametrize(
    ("call", "column", "message"),
    [
        ("summarize", 10, "expected '('"),
        ("  (1, 2)", 3, "expected a function name before '('"),
        ("reserve(1, 2", 13, "expected ')' to end the call"),
        ("f(1, 2", 7, "expected ')'"),
    ],
)
def test_a_malformed_invocation_names_its_column(call: str, column: int, message: str) -> None:
    with pytest.raises(ValueTypeError) as caught:
        wave.parse_invocation(call)
    assert str(caught.value).startswith(f"column {column}: {message}"), caught.value
    assert "--invoke takes NAME(ARGS)" in str(caught.value)


def test_argument_columns_count_from_the_start_of_the_call() -> None:
    call = ' reserve({sku: "a", quantity: 1, unit-price-cents: 2}, "x")'
    invocation = wave.parse_invocation(call)
    assert call[invocation.column - 1 :].startswith("{sku")
    with pytest.raises(ValueTypeError) as caught:
        wave.parse_arguments(invocation.arguments, RESERVE, invocation.column)
    assert str(caught.value).startswith("argument amount: column 56: expected an integer (u32)")
    assert call[55] == '"'


PYTHON_MISMATCHES = [
    (U32, True, "v: expected u32, got bool True"),
    (U32, 1 << 32, "out of range 0..4294967295"),
    (Primitive("f64"), "1", "v: expected f64, got str '1'"),
    (Primitive("f32"), 1e39, "out of range for f32"),
    (Primitive("char"), "ab", "a char is exactly one character"),
    (STRING, "\ud800", "lone surrogates"),
    (ListType(U32), (1, "x"), "v[1]: expected u32, got str 'x'"),
    (TupleType((U32, U32)), (1,), "1 elements, not 2"),
    (ITEM, {"sku": "a", "quantity": 1}, "missing field unit-price-cents"),
    (ITEM, {"sku": "a", "quantity": 1, "unit_price_cents": 2, "x": 1}, "unknown field x"),
    (ITEM, {"sku": 1, "quantity": 1, "unit_price_cents": 2}, "v.sku: expected string"),
    (ITEM, ["a"], "give a dict of its fields"),
    (COLOR, "blue", "cases: red, green, ok"),
    (PERMS, {"fly"}, "unknown flag fly"),
    (PERMS, "read", "give a set of flag names"),
    (SHAPE, Variant("dot", 1), "case dot takes no payload"),
    (SHAPE, Variant("circle", "x"), "v.circle: expected f64"),
    (SHAPE, 3, "use Variant(case, value)"),
    (OptionType(OptionType(U32)), 1, "wrap the inner option in Some(...)"),
    (ResultType(U32, STRING), 1, "use Ok(...) or Err(...)"),
    (ResultType(None, STRING), Ok(1), "ok takes no payload"),
    (ResultType(U32, STRING), Err(1), "v.err: expected string"),
]


@pytest.mark.parametrize(("ty", "value", "message"), PYTHON_MISMATCHES)
def test_python_value_mismatches(ty: WitType, value: Any, message: str) -> None:
    with pytest.raises(ValueTypeError) as caught:
        check(value, ty, "v")
    assert message in str(caught.value)


def test_python_conveniences() -> None:
    assert check({"sku": "a", "quantity": 1, "unit_price_cents": 2}, ITEM, "v") == {
        "sku": "a",
        "quantity": 1,
        "unit-price-cents": 2,
    }
    assert check([1, 2], ListType(Primitive("u8")), "v") == b"\x01\x02"
    assert check(2, Primitive("f64"), "v") == 2.0
    assert check("dot", SHAPE, "v") == Variant("dot")
    assert check(Some(3), OptionType(U32), "v") == 3
    assert check(["read"], PERMS, "v") == {"read"}


# -- property: whatever the writer prints, the parser reads back ---------------------------------


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_write_then_parse_round_trips(data: st.DataObject) -> None:
    ty = data.draw(wit_types())
    value = data.draw(wit_values(ty))
    text = wave.write(value, ty)
    assert wave.parse(text, ty) == value
    assert check(value, ty, "v") == value
