"""Checked by mypy --strict in tests/test_quality.py: the types users see."""

from __future__ import annotations

from typing import assert_type

import redis.asyncio

from redis_orm_async import Field, Model, Orm, Repository, Schema, create_orm


class User(Model):
    email: str = Field(unique=True)
    age: int = Field(index=True)


async def typed_usage(client: redis.asyncio.Redis) -> None:
    orm = create_orm(Schema([User]), client)
    assert_type(orm, Orm)
    users = orm.repo(User)
    assert_type(users, Repository[User])
    assert_type(await users.create(data={"email": "a@x.io", "age": 1}), User)
    assert_type(await users.find_unique(where={"email": "a@x.io"}), User | None)
    assert_type(await users.update(where={"email": "a@x.io"}, data={"age": 2}), User | None)
    assert_type(await users.upsert(where={"email": "a@x.io"}, create={"age": 1}, update={}), User)
    assert_type(await users.delete(where={"email": "a@x.io"}), User | None)
    assert_type(await users.count(), int)
    user = User(email="b@x.io", age=3)
    assert_type(user.age, int)
