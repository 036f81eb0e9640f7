"""A user's own tests with the redis-orm-async pytest plugin: no server to start by hand, no
Docker. tests/test_plugin.py runs this file as a user's suite would."""

from __future__ import annotations

import pytest

from redis_orm_async import Field, Model, Schema, UniqueConstraintError
from redis_orm_async.testing.pytest_plugin import OrmFactory

pytestmark = pytest.mark.anyio  # or pytest.mark.asyncio with pytest-asyncio


class User(Model):
    email: str = Field(unique=True)
    age: int = Field(index=True)


SCHEMA = Schema([User])


async def test_emails_are_unique(orm_factory: OrmFactory) -> None:
    users = orm_factory(SCHEMA).repo(User)  # a fresh ORM on a private, emptied server
    await users.create(data={"email": "ada@example.com", "age": 36})
    with pytest.raises(UniqueConstraintError):
        await users.create(data={"email": "ada@example.com", "age": 1})


async def test_each_test_starts_empty(orm_factory: OrmFactory) -> None:
    assert await orm_factory(SCHEMA).repo(User).count() == 0


@pytest.mark.parametrize("backend", ["redis", "upstash", "cluster"])
async def test_on_every_backend(orm_factory: OrmFactory, backend: str) -> None:
    users = orm_factory(SCHEMA, backend=backend).repo(User)  # type: ignore[arg-type]
    await users.create(data={"email": "bob@example.com", "age": 41})
    assert [u.email for u in await users.find_many(where={"age": {"gt": 40}})] == ["bob@example.com"]
