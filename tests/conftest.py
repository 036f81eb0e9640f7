"""Fixtures: a private redis-server per session, and one ORM fixture parametrized over backends.

Contract tests take ``make_orm`` and run once per backend in ``BACKENDS``; a new backend joins
the whole suite by adding one name there and one branch in ``_client_for``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings

from redis_orm_async import Orm, Schema, create_orm
from redis_orm_async.testing import EmbeddedRedis, LocalRedisCluster, UpstashRestServer

settings.register_profile(
    "default",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("default")

BACKENDS = ["redis", "upstash", "redis-cluster"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def upstash_server(redis_server: EmbeddedRedis) -> Iterator[UpstashRestServer]:
    """The local Upstash REST server in front of ``redis_server``, with a random token."""
    with UpstashRestServer(redis_server.url, token=secrets.token_urlsafe(24)) as server:
        yield server


def upstash_client(server: UpstashRestServer, token: str | None = None) -> Any:
    """The real ``upstash_redis`` async client on the local REST server (no retries, no telemetry)."""
    from upstash_redis.asyncio import Redis as UpstashRedis

    token = server.token if token is None else token
    return UpstashRedis(url=server.url, token=token, rest_retries=0, allow_telemetry=False)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A private three-primary Redis Cluster, started only when a cluster test first needs it."""
    with LocalRedisCluster() as cluster:
        yield cluster


@pytest.fixture
async def raw(redis_server: EmbeddedRedis, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A plain client on the server under test, emptied before each test, for inspecting keys.

    On the cluster backend it is a ``RedisCluster``: ``flushdb``/``keys`` reach every primary and
    single-key commands follow their slot.
    """
    client: Any
    if "backend_name" in request.fixturenames and request.getfixturevalue("backend_name") == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        client = aioredis.RedisCluster(host="127.0.0.1", port=cluster.ports[0], decode_responses=True)
    else:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _client_for(name: str, server: EmbeddedRedis, request: pytest.FixtureRequest) -> Any:
    if name == "redis":
        return aioredis.Redis.from_url(server.url)
    if name == "upstash":
        return upstash_client(request.getfixturevalue("upstash_server"))
    if name == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return aioredis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    raise AssertionError(f"unknown backend {name}")


@pytest.fixture
async def make_orm(
    backend_name: str,
    redis_server: EmbeddedRedis,
    raw: aioredis.Redis,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Orm]]:
    """``make_orm(schema, **options)`` builds an ORM on the backend under test."""
    clients: list[Any] = []
    orms: list[Orm] = []

    async def close_all() -> None:
        for client in clients:
            close = getattr(client, "aclose", None) or client.close
            await close()

    client = await _client_for(backend_name, redis_server, request)
    clients.append(client)

    def build(schema: Schema, **options: Any) -> Orm:
        orm = create_orm(schema, client, **options)
        orms.append(orm)
        return orm

    yield build
    await close_all()
