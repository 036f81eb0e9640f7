"""What an error carries is safe to log and to send to a client: no submitted value, no secret,
bounded sizes, and the field's location on every write path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest

import redis_orm_async
from redis_orm_async import DataValidationError, Field, Model, NotFoundError, Orm, Schema, ValidationError

from .models import User

MakeOrm = Callable[..., Orm]
HUGE = "x" * (5 * 1024 * 1024)


class Secretive(Model, key_prefix="secretive"):
    token: str = Field(unique=True)
    pin: str = Field(max_length=8)
    note: str | None = None

    @pydantic.field_validator("note")
    @classmethod
    def no_shouting(cls, value: str | None) -> str | None:
        if value is not None and value.isupper():
            raise ValueError(f"{value} is shouted")  # a careless validator quoting its input
        return value


SCHEMA = Schema([User, Secretive])


def test_the_clear_name_and_the_old_one_are_the_same_class_and_not_pydantics() -> None:
    assert redis_orm_async.ValidationError is redis_orm_async.DataValidationError
    assert DataValidationError.__name__ == "DataValidationError"
    assert not issubclass(DataValidationError, pydantic.ValidationError)
    with pytest.raises(ValidationError):
        raise DataValidationError("caught under its old name")


async def test_a_5_mb_value_is_not_echoed_by_create(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    with pytest.raises(DataValidationError) as caught:
        await orm.repo(Secretive).create({"token": "t1", "pin": HUGE})
    error = caught.value
    assert len(str(error)) < 1000 and len(repr(error)) < 1000
    assert error.errors() == [
        {"type": "string_too_long", "loc": ("pin",), "msg": "String should have at most 8 characters"}
    ]
    assert "xxxxxxxx" not in str(error)
    assert await orm.repo(Secretive).count() == 0


async def test_update_names_the_field_in_loc_and_echoes_nothing(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    ada = await users.create({"email": "ada@x.io", "age": 36})
    with pytest.raises(DataValidationError) as caught:
        await users.update({"id": ada.id}, {"age": "thirty-seven-and-a-secret"})
    (detail,) = caught.value.errors()
    assert detail["loc"] == ("age",) and detail["type"] == "int_parsing"
    assert "secret" not in str(caught.value) and set(detail) == {"type", "loc", "msg"}
    with pytest.raises(DataValidationError) as counter:
        await users.update({"id": ada.id}, {"name": {"increment": 1}})
    assert counter.value.errors()[0]["loc"] == ("name",)
    assert (await users.find_unique({"id": ada.id})) == ada


async def test_a_validator_quoting_its_input_is_scrubbed(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    with pytest.raises(DataValidationError) as caught:
        await orm.repo(Secretive).create({"token": "t2", "pin": "1234", "note": "MYPASSWORD"})
    assert "MYPASSWORD" not in str(caught.value)
    assert all("MYPASSWORD" not in error["msg"] for error in caught.value.errors())
    assert caught.value.errors()[0]["loc"] == ("note",)


async def test_not_found_names_the_fields_never_the_values(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    with pytest.raises(NotFoundError) as caught:
        await orm.repo(Secretive).find_unique_or_raise({"token": "reset-token-value-123"})
    assert "reset-token-value-123" not in str(caught.value) and "reset-token-value-123" not in repr(
        caught.value
    )
    assert str(caught.value) == "no Secretive matches the given token"
    assert caught.value.meta["fields"] == ["token"]
    with pytest.raises(NotFoundError) as ttl:
        await orm.repo(Secretive).ttl({"token": "reset-token-value-123"})
    assert "reset-token-value-123" not in str(ttl.value)


def test_errors_are_bounded_and_keep_only_safe_keys() -> None:
    many = [
        {"type": "t", "loc": ("k" * 500, 3), "msg": "m" * 1000, "input": HUGE, "ctx": {"x": HUGE}, "url": "u"}
        for _ in range(50)
    ]
    error = DataValidationError("bad " + "y" * 10_000, errors=many, meta={"field": "f"})
    assert len(error.message) <= 500
    for detail in error.errors():
        assert set(detail) == {"type", "loc", "msg"}
        assert detail["loc"][0] == "f" and len(detail["loc"][1]) <= 64 and detail["loc"][2] == 3
        assert len(detail["msg"]) <= 160
    plain = DataValidationError("User.age: cannot increment a null value", meta={"field": "age"})
    assert plain.errors() == [
        {"type": "invalid", "loc": ("age",), "msg": "User.age: cannot increment a null value"}
    ]


async def test_a_stored_record_that_no_longer_fits_is_reported_without_its_values(
    make_orm: MakeOrm, raw: Any
) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    ada = await users.create({"email": "ada@x.io", "age": 36})
    await raw.hset(orm.schema.meta(User).keys.record(ada.id), "age", "stored-secret-text")
    with pytest.raises(DataValidationError) as caught:
        await users.find_unique({"id": ada.id})
    assert "stored-secret-text" not in str(caught.value) and "stored-secret-text" not in repr(caught.value)
    assert all("stored-secret-text" not in error["msg"] for error in caught.value.errors())
