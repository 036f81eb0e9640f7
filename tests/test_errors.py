"""Failures of the backend and of the caller map to clear OrmErrors and lose nothing."""

from __future__ import annotations

import anyio
import pytest
import redis
import redis.asyncio as aioredis

from redis_orm_async import (
    AuthenticationError,
    BackendUnavailableError,
    OrmError,
    Schema,
    UnsupportedClientError,
    bootstrap_database,
    create_orm,
    create_orm_from_runtime,
)
from redis_orm_async.testing import EmbeddedRedis

from .models import User

SCHEMA = Schema([User])


async def test_a_server_that_went_away_is_unavailable_and_retryable() -> None:
    server = EmbeddedRedis().start()
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=1)
    orm = create_orm(SCHEMA, client)
    users = orm.repo(User)
    await users.create(data={"email": "a@x.io", "age": 1})
    server.stop()
    with pytest.raises(BackendUnavailableError) as caught:
        await users.create(data={"email": "b@x.io", "age": 1})
    assert caught.value.retryable and caught.value.backend_kind == "redis"
    assert isinstance(caught.value.cause, Exception) and not isinstance(caught.value.cause, OrmError)
    with pytest.raises(BackendUnavailableError):
        await users.find_unique(where={"email": "a@x.io"})
    await client.aclose()


async def test_a_timeout_is_unavailable_and_the_record_is_not_half_written(
    redis_server: EmbeddedRedis, raw: aioredis.Redis
) -> None:
    blocker = aioredis.Redis.from_url(redis_server.url)
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    orm = create_orm(SCHEMA, client)
    async with anyio.create_task_group() as group:
        group.start_soon(blocker.execute_command, "DEBUG", "SLEEP", "2")
        await anyio.sleep(0.3)  # the server is now asleep for another 1.7 s
        with pytest.raises(BackendUnavailableError):
            await orm.repo(User).create(data={"email": "slow@x.io", "age": 1})
    report = await orm.audit(User)
    assert report.ok, str(report)
    await blocker.aclose()
    await client.aclose()


async def test_a_wrong_password_is_an_authentication_error_without_the_secret() -> None:
    with EmbeddedRedis(args=["--requirepass", "right-secret"]) as server:
        client = aioredis.Redis.from_url(server.url, password="wrong-secret")
        with pytest.raises(AuthenticationError) as caught:
            await create_orm_from_runtime(schema=SCHEMA, client=client)
        assert "wrong-secret" not in str(caught.value) and "wrong-secret" not in repr(caught.value)
        assert caught.value.code == "authentication_failed"
        await client.aclose()
        no_password = aioredis.Redis.from_url(server.url)
        with pytest.raises(AuthenticationError):
            await create_orm(SCHEMA, no_password).repo(User).count()
        await no_password.aclose()


def test_sync_clients_are_refused_with_the_async_class_to_use() -> None:
    with pytest.raises(UnsupportedClientError, match=r"pass redis\.asyncio\.Redis"):
        create_orm(SCHEMA, redis.Redis())
    from upstash_redis import Redis as SyncUpstash

    with pytest.raises(UnsupportedClientError, match=r"upstash_redis\.asyncio\.Redis"):
        create_orm(SCHEMA, SyncUpstash(url="http://127.0.0.1:9", token="t"))


def test_redis_cluster_is_accepted_by_its_own_adapter() -> None:
    cluster = aioredis.RedisCluster(host="127.0.0.1", port=9)
    orm = create_orm(SCHEMA, cluster)
    assert orm.capabilities.backend_kind == "redis-cluster" and orm.capabilities.supports_cluster


def test_anything_else_is_refused_with_what_is_accepted() -> None:
    with pytest.raises(
        UnsupportedClientError, match=r"redis\.asyncio\.Redis or upstash_redis\.asyncio\.Redis"
    ):
        create_orm(SCHEMA, object())


async def test_runtime_helpers_detect_and_check_the_connection(
    redis_server: EmbeddedRedis, raw: object
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    orm = await bootstrap_database(schema=SCHEMA, client=client)
    assert orm.capabilities.backend_kind == "redis"
    assert orm.backend.features.server_version >= (6, 2)
    assert await orm.repo(User).count() == 0
    async with await create_orm_from_runtime(schema=SCHEMA, client=client) as scoped:
        assert await scoped.repo(User).count() == 0
    await client.aclose()
