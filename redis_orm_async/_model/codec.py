"""Value encoding: each field's Python value to the string stored in the record's HASH and back.

Encoding is exact: ``decode(encode(v))`` validates back to a value equal to ``v``, with the same
type, including naive and aware datetimes (stored as ISO 8601, with the offset that was given).
Equality and unique keys use ``token``, which is canonical where Python's ``==`` is looser than the
stored text (``Decimal("1.0") == Decimal("1.00")``; aware datetimes at the same instant), so that an
index answers exactly what a Python comparison would. Range indexes use ``score``.

Tokens and scores are total over every stored text, so no value can make them raise:

- an aware datetime's token is ``"Z"`` and its exact microseconds since the epoch (so instants at
  the edges of years 1 and 9999 never overflow a conversion to UTC); a naive one's is its ISO text;
- a Decimal's token is its value with trailing zeros stripped, in plain notation unless the
  exponent is large (``"1E+999"``), never rounded to a context precision;
- an int's score is ``float(text)``: the nearest double, ``inf``/``-inf`` past the double range,
  exactly what Redis's and Lua's ``strtod`` give, so any Python int can be range-indexed; ints
  sharing a score are ordered exactly by the readers, which compare the ints themselves.

An encoder may still refuse a value that cannot be stored (a JSON value with NaN, an int beyond
Python's digit limit); the schema turns that into a ``ValidationError`` naming the field.
"""

from __future__ import annotations

import enum
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PydanticUserError, TypeAdapter

FieldKind = Literal["text", "int", "float", "bool", "decimal", "datetime", "date", "enum", "json"]
RANGE_KINDS: frozenset[str] = frozenset({"int", "float", "decimal", "datetime", "date"})
EQUALITY_KINDS: frozenset[str] = frozenset({"text", "bool", "enum"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLAIN_EXPONENT = 64
"""Decimal tokens use plain notation while the exponent is within this bound, else ``E`` notation."""
PREVIEW_CHARS = 24


def has_surrogate(text: str) -> bool:
    """True if ``text`` holds a lone surrogate, which no UTF-8 encoder accepts; O(1) for ASCII
    (CPython knows), and for other text the C encoder is several times faster than a regex."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def preview(value: Any) -> str:
    """A short ``repr`` for error messages: a caller's value is never echoed whole."""
    text_like = isinstance(value, str | bytes)
    try:
        shown = repr(value[:PREVIEW_CHARS] if text_like else value)
    except Exception:  # an int past the digit limit, or a repr that fails
        return f"<{type(value).__name__}>"
    if len(shown) <= PREVIEW_CHARS + 8 and not (text_like and len(value) > PREVIEW_CHARS):
        return shown
    size = type(value).__name__
    if text_like:
        size = f"{len(value)} {'chars' if isinstance(value, str) else 'bytes'}"
    return f"{shown[: PREVIEW_CHARS + 8]}... ({size})"


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """Split ``X | None`` into ``(X, True)``; any other annotation into ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        nullable = len(members) != len(typing.get_args(annotation))
        if len(members) == 1:
            return members[0], nullable
        return typing.Union[tuple(members)], nullable  # noqa: UP007
    return annotation, annotation is None or annotation is type(None)


def datetime_micros(value: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are taken as UTC so that ordering is total."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class FieldCodec:
    """How one field is stored, compared and scored.

    ``token`` and ``score`` take the stored text, so writes, queries and the audit derive index
    entries the same way from the same bytes.
    """

    kind: FieldKind
    encode: Callable[[Any], str]
    decode: Callable[[str], Any]
    token: Callable[[str], str]
    score: Callable[[str], float] | None

    @property
    def range_capable(self) -> bool:
        return self.score is not None

    @property
    def equality_capable(self) -> bool:
        return self.kind != "json"


def same_text(text: str) -> str:
    """The token of a codec whose stored text is already canonical: the text itself."""
    return text


def _int_score(text: str) -> float:
    return float(text)  # inf past the double range, as Redis and Lua read it, never OverflowError


def _float_score(text: str) -> float:
    number = float(text)
    if math.isnan(number):
        raise ValueError("NaN cannot be placed in a range index")
    return number


def _float_token(text: str) -> str:
    return repr(float(text) + 0.0)


def _decimal_score(text: str) -> float:
    return _float_score(text)


def _decimal_token(text: str) -> str:
    value = Decimal(text)
    if not value.is_finite():
        return "NaN" if value.is_nan() else str(value)
    sign, digits, exponent = value.as_tuple()
    coefficient = "".join(map(str, digits)).rstrip("0")
    if not coefficient:
        return "0"
    assert isinstance(exponent, int)
    exponent += len(digits) - len(coefficient)
    if abs(exponent) > _PLAIN_EXPONENT:
        return f"{'-' if sign else ''}{coefficient}E{exponent:+d}"
    exact = Decimal((sign, tuple(map(int, coefficient)), exponent))
    return format(exact, "f")


def _datetime_token(text: str) -> str:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.isoformat()
    return "Z" + str(datetime_micros(value))


def _datetime_score(text: str) -> float:
    return float(datetime_micros(datetime.fromisoformat(text)))


def _date_score(text: str) -> float:
    return float(date.fromisoformat(text).toordinal())


def _bool_encode(value: Any) -> str:
    return "true" if value else "false"


def _bool_decode(text: str) -> bool:
    return text == "true"


def _json_token(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True)


def _enum_codec(enum_type: type[enum.Enum]) -> FieldCodec:
    def encode(member: Any) -> str:
        value = member.value if isinstance(member, enum.Enum) else member
        return value if isinstance(value, str) else json.dumps(value)

    by_text = {encode(member): member for member in enum_type}

    def decode(text: str) -> Any:
        return by_text.get(text, text)

    return FieldCodec("enum", encode, decode, same_text, None)


_JSON_CONFIG = ConfigDict(ser_json_inf_nan="constants")
_INT_DIGITS_RISK = 4300
"""Python refuses to parse ints of more digits than this (``sys.get_int_max_str_digits``)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON has no {name}")


def _json_adapter(annotation: Any) -> TypeAdapter[Any]:
    """Writes NaN and infinities as constants, which ``encode`` then refuses; a model serializes
    with its own config (where they become ``null``), hence the read-back check in ``encode``."""
    try:
        return TypeAdapter(annotation, config=_JSON_CONFIG)
    except PydanticUserError:
        return TypeAdapter(annotation)


def _json_may_hold(annotation: Any) -> tuple[bool, bool, bool]:
    """Whether values of ``annotation`` may hold floats, ints, and floats inside a nested model,
    judged from its JSON schema (anything the schema leaves open may hold either)."""
    try:
        schema = json.dumps(TypeAdapter(annotation).json_schema())
    except Exception:
        return True, True, True
    open_ended = "{}" in schema or "true" in schema
    floats = open_ended or '"number"' in schema
    return floats, open_ended or '"integer"' in schema, floats and '"properties"' in schema


def _holds_surrogate(value: Any) -> bool:
    """Pydantic writes a lone surrogate in a dict key as U+FFFD instead of refusing it."""
    if isinstance(value, str):
        return has_surrogate(value)
    if isinstance(value, dict):
        return any(_holds_surrogate(key) or _holds_surrogate(item) for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_surrogate(item) for item in value)
    if isinstance(value, BaseModel):
        return _holds_surrogate(value.__dict__)
    return False


def _json_codec(annotation: Any) -> FieldCodec:
    """JSON text that other tools can read back: standard JSON only, so NaN and infinities are
    refused rather than written as non-standard constants or silently turned into ``null``, and
    so are ints too long for Python to parse back."""
    adapter = _json_adapter(annotation)
    floats, ints, nested_floats = _json_may_hold(annotation)

    def encode(value: Any) -> str:
        text = adapter.dump_json(value).decode()
        if "\ufffd" in text and _holds_surrogate(value):
            raise UnicodeEncodeError("utf-8", "", 0, 1, "surrogates not allowed")
        if (floats and ("NaN" in text or "Infinity" in text)) or (ints and len(text) > _INT_DIGITS_RISK):
            json.loads(text, parse_constant=_refuse_constant)
        if nested_floats and "null" in text:
            adapter.validate_json(text, by_alias=False, by_name=True)
        return text

    return FieldCodec("json", encode, json.loads, _json_token, None)


def _text_like_codec(annotation: Any) -> FieldCodec:
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def encode(value: Any) -> str:
        dumped = adapter.dump_python(value, mode="json")
        return dumped if isinstance(dumped, str) else json.dumps(dumped)

    return FieldCodec("text", encode, str, same_text, None)


def _is_json_string_type(annotation: Any) -> bool:
    try:
        schema = TypeAdapter(annotation).json_schema()
    except Exception:
        return False
    if schema.get("type") == "string":
        return True
    variants = schema.get("enum")
    return isinstance(variants, list) and all(isinstance(v, str) for v in variants)


def codec_for(annotation: Any) -> FieldCodec:
    """Pick the codec for a field annotation (``Optional`` already unwrapped)."""
    if annotation is str:
        return FieldCodec("text", str, str, same_text, None)
    if annotation is bool:
        return FieldCodec("bool", _bool_encode, _bool_decode, same_text, None)
    if annotation is int:
        return FieldCodec("int", str, int, same_text, _int_score)
    if annotation is float:
        return FieldCodec("float", repr, float, _float_token, _float_score)
    if annotation is Decimal:
        return FieldCodec("decimal", str, Decimal, _decimal_token, _decimal_score)
    if annotation is datetime:
        return FieldCodec(
            "datetime", datetime.isoformat, datetime.fromisoformat, _datetime_token, _datetime_score
        )
    if annotation is date:
        return FieldCodec("date", date.isoformat, date.fromisoformat, same_text, _date_score)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_codec(annotation)
    origin = typing.get_origin(annotation) or annotation
    structured = isinstance(origin, type) and issubclass(origin, dict | list | tuple | set)
    if structured or (isinstance(origin, type) and issubclass(origin, BaseModel)):
        return _json_codec(annotation)
    if annotation is Any or origin is typing.Union or origin is types.UnionType:
        return _json_codec(annotation)
    if _is_json_string_type(annotation):
        return _text_like_codec(annotation)
    return _json_codec(annotation)
