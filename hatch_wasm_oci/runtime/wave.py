"""WAVE, the value syntax of ``wasmtime run --invoke``: parsing against a type, and printing.

``parse(text, ty)`` reads one value of type ``ty`` into the Python values of
:mod:`hatch_wasm_oci.runtime.values`; ``write(value, ty)`` prints one the way wasm-wave's
canonical writer does (``", "`` separators, options always ``some(...)``/``none``).
``parse_invocation("f(1, \\"x\\")")`` splits a call; ``parse_arguments`` reads its arguments
against the function's parameters. Every error is one line naming the column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from hatch_wasm_oci.errors import ValueTypeError
from hatch_wasm_oci.runtime.types import (
    INTEGER_RANGES,
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
from hatch_wasm_oci.runtime.values import Err, Ok, Some, Variant, as_f32, f32_fits

KEYWORDS = frozenset({"true", "false", "some", "none", "ok", "err", "inf", "nan"})
MAX_DEPTH = 100

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?![A-Za-z0-9_.]))
  | (?P<label>-inf(?![A-Za-z0-9-])|%?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[\[\](){},:])
    """,
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "t": "\t", "n": "\n", "r": "\r"}
_UNICODE_ESCAPE = re.compile(r"u\{([0-9A-Fa-f]{1,6})\}")


@dataclass(frozen=True)
class Token:
    kind: str  # number, label, string, char, punct, end
    text: str
    column: int  # 1-based


def _tokens(text: str, column: int = 1) -> Iterator[Token]:
    """The tokens of ``text``, columns counted from ``column`` (where ``text`` starts)."""
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            snippet = text[position : position + 10]
            raise ValueTypeError(f"column {position + column}: unexpected {snippet!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            yield Token(kind, match.group(), position + column)
        position = match.end()
    yield Token("end", "", len(text) + column)


def _unescape(body: str, column: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        match = _UNICODE_ESCAPE.match(body, i + 1)
        if match is None:
            raise ValueTypeError(f"column {column + i}: invalid escape \\{nxt}")
        code = int(match.group(1), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ValueTypeError(f"column {column + i}: \\u{{{match.group(1)}}} is not a char")
        out.append(chr(code))
        i = match.end()
    return "".join(out)


class _Parser:
    def __init__(self, text: str, column: int = 1) -> None:
        self.tokens = list(_tokens(text, column))
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def fail(self, what: str, token: Token | None = None) -> NoReturn:
        token = token or self.token
        found = "the end" if token.kind == "end" else repr(token.text)
        raise ValueTypeError(f"column {token.column}: expected {what}, found {found}")

    def at(self, punct: str) -> bool:
        return self.token.kind == "punct" and self.token.text == punct

    def expect(self, punct: str) -> None:
        if not self.at(punct):
            self.fail(repr(punct))
        self.advance()

    def sequence(self, close: str) -> Iterator[None]:
        """Yield once per element up to ``close`` (consumed); commas between, one trailing."""
        while not self.at(close):
            yield
            if self.at(","):
                self.advance()
            elif not self.at(close):
                self.fail(f"',' or {close!r}")
        self.advance()

    def label(self) -> tuple[str, bool]:
        """A label without its ``%`` and whether it was escaped."""
        token = self.token
        if token.kind != "label" or token.text == "-inf":
            self.fail("a name")
        self.advance()
        escaped = token.text.startswith("%")
        return token.text.lstrip("%"), escaped

    def value(self, ty: WitType) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueTypeError(f"column {self.token.column}: values nested too deeply")
        try:
            return self._value(ty)
        finally:
            self.depth -= 1

    def _value(self, ty: WitType) -> Any:
        token = self.token
        if isinstance(ty, Primitive):
            return self.primitive(ty)
        if isinstance(ty, ListType):
            self.expect("[")
            items = [self.value(ty.element) for _ in self.sequence("]")]
            return bytes(items) if ty.element == Primitive("u8") else items
        if isinstance(ty, TupleType):
            self.expect("(")
            elements: list[Any] = []
            for _ in self.sequence(")"):
                if len(elements) == len(ty.elements):
                    self.fail(f"')' ({ty.wit()} has {len(ty.elements)} elements)")
                elements.append(self.value(ty.elements[len(elements)]))
            if len(elements) != len(ty.elements):
                self.fail(f"{len(ty.elements)} elements for {ty.wit()}", token)
            return tuple(elements)
        if isinstance(ty, RecordType):
            return self.record(ty)
        if isinstance(ty, FlagsType):
            self.expect("{")
            names: set[str] = set()
            for _ in self.sequence("}"):
                name_token = self.token
                name, _escaped = self.label()
                if name not in ty.names:
                    self.fail(f"a flag of {ty.wit()} ({', '.join(ty.names)})", name_token)
                names.add(name)
            return names
        if isinstance(ty, EnumType):
            name, _escaped = self.label() if token.kind == "label" else self.fail(ty.wit())
            if name not in ty.names:
                self.fail(f"a case of {ty.wit()} ({', '.join(ty.names)})", token)
            return name
        if isinstance(ty, VariantType):
            return self.variant(ty)
        if isinstance(ty, OptionType):
            if token.kind == "label" and token.text in ("some", "none"):
                self.advance()
                if token.text == "none":
                    return None
                self.expect("(")
                inner = self.value(ty.payload)
                self.expect(")")
            else:
                inner = self.value(ty.payload)
            return Some(inner) if isinstance(ty.payload, OptionType) else inner
        if isinstance(ty, ResultType):
            if token.kind == "label" and token.text in ("ok", "err"):
                self.advance()
                payload = ty.ok if token.text == "ok" else ty.err
                case = Ok if token.text == "ok" else Err
                if payload is None:
                    if self.at("("):
                        self.fail(f"no payload ({token.text} of {ty.wit()} has none)")
                    return case()
                self.expect("(")
                inner = self.value(payload)
                self.expect(")")
                return case(inner)
            if ty.ok is None:
                self.fail(f"ok or err for {ty.wit()}")
            return Ok(self.value(ty.ok))
        raise ValueTypeError(
            f"column {token.column}: values of type {ty.wit()} cannot be written in WAVE"
        )

    def primitive(self, ty: Primitive) -> Any:
        token = self.token
        kind = ty.kind
        if kind == "bool":
            if token.kind != "label" or token.text not in ("true", "false"):
                self.fail("true or false (bool)")
            self.advance()
            return token.text == "true"
        if kind in INTEGER_RANGES:
            if token.kind != "number" or not re.fullmatch(r"-?[0-9]+", token.text):
                self.fail(f"an integer ({kind})")
            number = int(token.text)
            low, high = INTEGER_RANGES[kind]
            if not low <= number <= high:
                self.fail(f"{kind} in {low}..{high}")
            self.advance()
            return number
        if kind in ("f32", "f64"):
            if token.kind == "label" and token.text in ("inf", "-inf", "nan"):
                self.advance()
                return float(token.text)
            if token.kind != "number":
                self.fail(f"a number ({kind})")
            value = float(token.text)
            if math.isinf(value) or (kind == "f32" and not f32_fits(value)):
                self.fail(f"a finite {kind}")
            self.advance()
            return as_f32(value) if kind == "f32" else value
        if kind == "char":
            if token.kind != "char":
                self.fail("a char like 'x'")
            text = _unescape(token.text[1:-1], token.column + 1)
            if len(text) != 1:
                self.fail("exactly one character between ' '")
            self.advance()
            return text
        if token.kind != "string":
            self.fail('a string like "text"')
        self.advance()
        return _unescape(token.text[1:-1], token.column + 1)

    def record(self, ty: RecordType) -> dict[str, Any]:
        start = self.token
        self.expect("{")
        types = dict(ty.fields)
        given: dict[str, Any] = {}
        if self.at(":"):
            self.advance()
            self.expect("}")
        else:
            for _ in self.sequence("}"):
                name_token = self.token
                name, _escaped = self.label()
                if name not in types:
                    fields = ", ".join(types) or "none"
                    self.fail(f"a field of {ty.wit()} ({fields})", name_token)
                if name in given:
                    self.fail(f"each field once ({name} is repeated)", name_token)
                self.expect(":")
                given[name] = self.value(types[name])
            if not given and types:
                self.fail("'{:}' for an empty record, or fields", start)
        out: dict[str, Any] = {}
        for name, field_type in ty.fields:
            if name in given:
                out[name] = given[name]
            elif isinstance(field_type, OptionType):
                out[name] = None
            else:
                self.fail(f"field {name} of {ty.wit()}", start)
        return out

    def variant(self, ty: VariantType) -> Variant:
        token = self.token
        if token.kind != "label":
            self.fail(f"a case of {ty.wit()}")
        name, _escaped = self.label()
        cases = dict(ty.cases)
        if name not in cases:
            self.fail(f"a case of {ty.wit()} ({', '.join(cases)})", token)
        payload = cases[name]
        if payload is None:
            return Variant(name)
        self.expect("(")
        inner = self.value(payload)
        self.expect(")")
        return Variant(name, inner)

    def end(self) -> None:
        if self.token.kind != "end":
            self.fail("the end of the value")


def parse(text: str, ty: WitType) -> Any:
    """One WAVE value of type ``ty``, as a Python value; ValueTypeError says where it fails."""
    parser = _Parser(text)
    value = parser.value(ty)
    parser.end()
    return value


class Invocation(NamedTuple):
    """A ``--invoke`` call split: the function's name, its argument text, and the 1-based
    column where that text starts in the call (so argument errors name the call's columns)."""

    name: str
    arguments: str
    column: int


_INVOKE_FORM = "--invoke takes NAME(ARGS), e.g. 'add(1, 2)' or 'f()'"


def parse_invocation(text: str) -> Invocation:
    """``"ns:pkg/iface#f(1, 2)"`` -> ``Invocation("ns:pkg/iface#f", "1, 2", 16)``."""
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    if not body:
        raise ValueTypeError(f"{_INVOKE_FORM}; got an empty call")
    open_paren = body.find("(")
    if open_paren < 0:
        column = lead + len(body) + 1
        raise ValueTypeError(f"column {column}: expected '(' ({_INVOKE_FORM}; got {body!r})")
    if not body[:open_paren].strip():
        column = lead + open_paren + 1
        raise ValueTypeError(
            f"column {column}: expected a function name before '(' ({_INVOKE_FORM})"
        )
    if not body.endswith(")"):
        column = lead + len(body) + 1
        raise ValueTypeError(
            f"column {column}: expected ')' to end the call ({_INVOKE_FORM}; got {body!r})"
        )
    return Invocation(body[:open_paren].strip(), body[open_paren + 1 : -1], lead + open_paren + 2)


def parse_arguments(text: str, function: FunctionType, column: int = 1) -> list[Any]:
    """The comma-separated WAVE arguments of a call, checked against ``function``'s params;
    ``column`` is where ``text`` starts in the call (:attr:`Invocation.column`)."""
    parser = _Parser(text, column)
    values: list[Any] = []
    params = function.params
    try:
        while parser.token.kind != "end":
            if len(values) == len(params):
                raise ValueTypeError(f"too many arguments: {function.name} takes {len(params)}")
            name, ty = params[len(values)]
            try:
                values.append(parser.value(ty))
            except ValueTypeError as exc:
                raise ValueTypeError(f"argument {name}: {exc}") from None
            if parser.at(","):
                parser.advance()
            elif parser.token.kind != "end":
                parser.fail("',' between arguments")
        if len(values) < len(params):
            missing = ", ".join(name for name, _ in params[len(values) :])
            raise ValueTypeError(f"missing argument(s) {missing}")
    except ValueTypeError as exc:
        raise ValueTypeError(f"{exc}; expected {function.wit()}") from None
    return values


# -- writing -----------------------------------------------------------------------------------


def _label(name: str) -> str:
    return f"%{name}" if name in KEYWORDS else name


def _quote(text: str, quote: str) -> str:
    out = []
    for c in text:
        if c in (quote, "\\"):
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    return quote + "".join(out) + quote


def _float(value: float, kind: str) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if kind == "f32":
        exact = as_f32(value)
        for digits in range(1, 10):
            candidate = float(f"{exact:.{digits}g}")
            # Near the largest f32 a short candidate can round past it (3.403e38): skip it.
            if f32_fits(candidate) and as_f32(candidate) == exact:
                text = repr(candidate)
                break
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa.removesuffix('.0')}e{exponent}"
    return text.removesuffix(".0")


def write(value: Any, ty: WitType) -> str:
    """``value`` (as :func:`parse` returns it) in canonical WAVE."""
    if isinstance(ty, Primitive):
        kind = ty.kind
        if kind == "bool":
            return "true" if value else "false"
        if kind in INTEGER_RANGES:
            return str(value)
        if kind in ("f32", "f64"):
            return _float(float(value), kind)
        return _quote(value, "'" if kind == "char" else '"')
    if isinstance(ty, ListType):
        return "[" + ", ".join(write(v, ty.element) for v in value) + "]"
    if isinstance(ty, TupleType):
        return "(" + ", ".join(write(v, t) for v, t in zip(value, ty.elements, strict=True)) + ")"
    if isinstance(ty, RecordType):
        # Option fields that are none are left out, as wasmtime's writer does.
        fields = [
            f"{_label(n)}: {write(value[n], t)}"
            for n, t in ty.fields
            if not (isinstance(t, OptionType) and value[n] is None)
        ]
        return "{" + ", ".join(fields) + "}" if fields else "{:}"
    if isinstance(ty, FlagsType):
        return "{" + ", ".join(_label(n) for n in ty.names if n in value) + "}"
    if isinstance(ty, EnumType):
        return _label(value)
    if isinstance(ty, VariantType):
        payload = dict(ty.cases)[value.case]
        if payload is None:
            return _label(value.case)
        return f"{_label(value.case)}({write(value.value, payload)})"
    if isinstance(ty, OptionType):
        if value is None:
            return "none"
        inner = value.value if isinstance(value, Some) else value
        return f"some({write(inner, ty.payload)})"
    if isinstance(ty, ResultType):
        case, payload = ("ok", ty.ok) if isinstance(value, Ok) else ("err", ty.err)
        return case if payload is None else f"{case}({write(value.value, payload)})"
    return f"<{ty.wit()}>"
