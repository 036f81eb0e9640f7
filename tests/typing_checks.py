"""Checked by mypy --strict in tests/test_quality.py: the types users see."""

from __future__ import annotations

from typing import assert_type

import redis.asyncio

from redis_orm_async import (
    Field,
    Model,
    Orm,
    OrmSession,
    RateLimiter,
    RateLimitStatus,
    Repository,
    Schema,
    create_orm,
)


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


async def typed_sessions_and_limits() -> None:
    orm = create_orm(Schema([User]), url="redis://localhost:6379")
    assert_type(orm, Orm)
    async with orm.session() as session:
        assert_type(session, OrmSession)
        assert_type(await session.get(User, "id"), User | None)
        assert_type(await session.find_unique(User, {"email": "a@x.io"}), User | None)
        assert_type(await session.find_many(User, where={"age": 1}), list[User])
        assert_type(session.add(User(email="c@x.io", age=1)), User)
    limiter = orm.rate_limiter("20/minute", name="api")
    assert_type(limiter, RateLimiter)
    assert_type(await limiter.hit("client"), RateLimitStatus)
    await orm.aclose()
