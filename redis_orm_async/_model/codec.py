"""Value encoding: each field's Python value to the string stored in the record's HASH and back.

Encoding is exact: ``decode(encode(v))`` validates back to a value equal to ``v``, with the same
type, including naive and aware datetimes (stored as ISO 8601, with the offset that was given).
Equality and unique keys use ``token``, which is canonical where Python's ``==`` is looser than the
stored text (``Decimal("1.0") == Decimal("1.00")``; aware datetimes at the same instant), so that an
index answers exactly what a Python comparison would. Range indexes use ``score``.
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

from pydantic import BaseModel, TypeAdapter

FieldKind = Literal["text", "int", "float", "bool", "decimal", "datetime", "date", "enum", "json"]
RANGE_KINDS: frozenset[str] = frozenset({"int", "float", "decimal", "datetime", "date"})
EQUALITY_KINDS: frozenset[str] = frozenset({"text", "bool", "enum"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _same(text: str) -> str:
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
    if value.is_nan():
        return "NaN"
    normalized = value.normalize()
    return "0" if normalized.is_zero() else format(normalized, "f")


def _datetime_token(text: str) -> str:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.isoformat()
    return value.astimezone(UTC).isoformat()


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

    return FieldCodec("enum", encode, decode, _same, None)


def _json_codec(annotation: Any) -> FieldCodec:
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def encode(value: Any) -> str:
        return adapter.dump_json(value).decode()

    return FieldCodec("json", encode, json.loads, _json_token, None)


def _text_like_codec(annotation: Any) -> FieldCodec:
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def encode(value: Any) -> str:
        dumped = adapter.dump_python(value, mode="json")
        return dumped if isinstance(dumped, str) else json.dumps(dumped)

    return FieldCodec("text", encode, str, _same, None)


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
        return FieldCodec("text", str, str, _same, None)
    if annotation is bool:
        return FieldCodec("bool", _bool_encode, _bool_decode, _same, None)
    if annotation is int:
        return FieldCodec("int", str, int, _same, _int_score)
    if annotation is float:
        return FieldCodec("float", repr, float, _float_token, _float_score)
    if annotation is Decimal:
        return FieldCodec("decimal", str, Decimal, _decimal_token, _decimal_score)
    if annotation is datetime:
        return FieldCodec(
            "datetime", datetime.isoformat, datetime.fromisoformat, _datetime_token, _datetime_score
        )
    if annotation is date:
        return FieldCodec("date", date.isoformat, date.fromisoformat, _same, _date_score)
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
