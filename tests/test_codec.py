"""Encoding is exact for every field type: pure tests, no server."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given

from redis_orm_async import Schema
from redis_orm_async._model.codec import codec_for

from .models import Everything
from .strategies import EVERYTHING

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
