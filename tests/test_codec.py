"""Encoding is exact for every field type: pure tests, no server."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from redis_orm_async import Schema
from redis_orm_async._model.codec import codec_for, datetime_micros, has_surrogate, preview

from .models import Everything
from .strategies import EVERYTHING, JSON_VALUES

META = Schema([Everything]).meta(Everything)


@given(EVERYTHING)
def test_every_type_round_trips_through_its_stored_text(values: dict[str, Any]) -> None:
    record = Everything(**values)
    encoded = META.encode(record)
    assert all(text is None or isinstance(text, str) for text in encoded.values())
    stored = {name: text for name, text in encoded.items() if text is not None}
    decoded = META.decode(record.id, stored)
    assert decoded == record
    for name in Everything.model_fields:
        assert type(getattr(decoded, name)) is type(getattr(record, name))
    if record.at is not None:
        assert decoded.at is not None and decoded.at.tzinfo == record.at.tzinfo


def test_none_is_absent_from_the_stored_hash() -> None:
    encoded = META.encode(Everything(text=None, number=3))
    assert encoded["text"] is None and encoded["number"] == "3"


def test_tokens_follow_python_equality() -> None:
    decimal = codec_for(Decimal)
    assert decimal.token("1.0") == decimal.token("1.00") == decimal.token("1")
    assert decimal.token("0.0") == decimal.token("-0")
    floats = codec_for(float)
    assert floats.token("-0.0") == floats.token("0.0")
    stamp = codec_for(datetime)
    plus_two = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    utc = datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert plus_two == utc
    assert stamp.token(plus_two.isoformat()) == stamp.token(utc.isoformat())
    naive = datetime(2024, 1, 1, 10)
    assert stamp.token(naive.isoformat()) != stamp.token(utc.isoformat())


def test_scores_order_like_the_values() -> None:
    stamp = codec_for(datetime)
    assert stamp.score is not None
    early = datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    late = datetime(2024, 1, 1, 9, 0, 0, 1, tzinfo=UTC)
    assert stamp.score(early.isoformat()) < stamp.score(late.isoformat())
    ints = codec_for(int)
    assert ints.score is not None and ints.score("-5") < ints.score("3")
    floats = codec_for(float)
    assert floats.score is not None and math.isinf(floats.score("inf"))


AWARE_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)), timezone(timedelta(hours=5.5))]
)
EDGE_DATETIMES = st.one_of(
    st.datetimes(timezones=AWARE_ZONES),
    st.datetimes(max_value=datetime(1, 1, 2), timezones=AWARE_ZONES),
    st.datetimes(min_value=datetime(9999, 12, 30), timezones=AWARE_ZONES),
)


@given(EDGE_DATETIMES, EDGE_DATETIMES)
def test_aware_datetime_tokens_are_exact_microseconds_and_never_overflow(a: datetime, b: datetime) -> None:
    stamp = codec_for(datetime)
    assert stamp.score is not None
    token_a, token_b = stamp.token(a.isoformat()), stamp.token(b.isoformat())
    assert token_a == "Z" + str(datetime_micros(a))
    assert (token_a == token_b) == (a == b)
    if a < b:
        assert stamp.score(a.isoformat()) <= stamp.score(b.isoformat())


@given(st.datetimes())
def test_naive_datetime_tokens_keep_their_iso_text_and_differ_from_aware_ones(value: datetime) -> None:
    stamp = codec_for(datetime)
    assert stamp.token(value.isoformat()) == value.isoformat()
    assert stamp.token(value.isoformat()) != stamp.token(value.replace(tzinfo=UTC).isoformat())


def test_edge_instants_in_years_1_and_9999_have_tokens_and_scores() -> None:
    stamp = codec_for(datetime)
    assert stamp.score is not None
    for value in (
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime.min,
        datetime.max,
    ):
        text = value.isoformat()
        assert stamp.token(text) and math.isfinite(stamp.score(text))


@given(st.integers() | st.integers(min_value=2**1023, max_value=10**4000).map(lambda n: n * random_sign(n)))
def test_an_int_scores_as_strtod_reads_its_text(number: int) -> None:
    ints = codec_for(int)
    assert ints.score is not None
    text = ints.encode(number)
    assert ints.score(text) == float(text)
    assert math.isinf(ints.score(text)) == (abs(number) >= 2**1024 - 2**970)


WIDE_INTS = st.integers(min_value=-(10**500), max_value=10**500)


@given(WIDE_INTS, WIDE_INTS)
def test_int_scores_never_invert_the_order(a: int, b: int) -> None:
    ints = codec_for(int)
    assert ints.score is not None
    if a <= b:
        assert ints.score(str(a)) <= ints.score(str(b))


def random_sign(number: int) -> int:
    return -1 if number % 2 else 1


DECIMALS = st.decimals(allow_nan=False, allow_infinity=False) | st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=-(10**6), max_value=10**6),
)


@given(DECIMALS, DECIMALS)
def test_decimal_tokens_are_equal_exactly_when_the_values_are(a: Decimal, b: Decimal) -> None:
    decimal = codec_for(Decimal)
    token_a, token_b = decimal.token(str(a)), decimal.token(str(b))
    assert (token_a == token_b) == (a == b)
    assert len(token_a) <= len(str(a)) + 70  # plain notation only while the exponent is small


def test_decimal_tokens_never_round_and_never_expand_exponents() -> None:
    decimal = codec_for(Decimal)
    long = "1.000000000000000000000000000000000001"
    assert decimal.token(long) != decimal.token("1")
    assert decimal.token("1E+999999999") == "1E+999999999"
    assert decimal.token("Infinity") == "Infinity" and decimal.token("-Infinity") == "-Infinity"
    assert decimal.token("NaN") == decimal.token("sNaN") == "NaN"
    assert decimal.token("1.50") == "1.5" and decimal.token("-0E+5") == "0"
    assert decimal.score is not None and math.isinf(decimal.score("1E+99999"))


@pytest.mark.parametrize(
    "value",
    [
        {"a": float("nan")},
        {"a": [1.0, float("inf")]},
        {"a": float("-inf")},
        {"a": "\udc80"},
        {"\ud800": 1},
        {"a": b"\xff"},
        {"a": object()},
        {"a": 10**4400},
    ],
)
def test_json_values_that_would_not_read_back_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        codec_for(dict[str, Any]).encode(value)


class Point(BaseModel):
    x: float


def test_a_nested_model_float_that_json_would_null_is_refused() -> None:
    codec = codec_for(Point)
    with pytest.raises(ValueError):
        codec.encode(Point(x=float("nan")))
    assert codec.decode(codec.encode(Point(x=1.5))) == {"x": 1.5}
    assert codec_for(list[Point]).encode([Point(x=2.0)]) == '[{"x":2.0}]'


@given(JSON_VALUES)
def test_json_values_round_trip_as_standard_json(value: Any) -> None:
    codec = codec_for(dict[str, Any])
    text = codec.encode({"v": value})
    assert json.loads(text, parse_constant=pytest.fail) == {"v": value}


@given(st.text())
def test_surrogates_are_found_in_any_text(text: str) -> None:
    assert has_surrogate(text) == any(0xD800 <= ord(char) <= 0xDFFF for char in text)


@given(st.text(min_size=0, max_size=3000) | st.binary(max_size=3000) | st.integers())
def test_previews_are_short(value: Any) -> None:
    shown = preview(value)
    assert len(shown) <= 80
    if isinstance(value, str | bytes) and len(value) > 40:
        assert str(value) not in shown and repr(value) not in shown
