"""The pytest plugin: real, private servers for the tests of an app that uses redis-orm-async.

Installed with the package and loaded by pytest through the ``pytest11`` entry point, so an app's
tests only ask for the fixtures by name. Nothing needs Docker or a server started by hand: each
fixture starts a private server on a free loopback port and stops it afterwards, and the tests
never touch a server they did not start.

- ``redis_orm_server`` (session): an ``EmbeddedRedis``; ``--redis-orm-server=valkey`` (or the ini
  option ``redis_orm_server = valkey``) starts Valkey 9 instead of Redis 6.2;
- ``redis_orm_url`` (per test): that server's URL, emptied first, for clients of your own;
- ``redis_orm_upstash`` (session): the local Upstash REST server in front of it;
- ``redis_orm_cluster`` (session): a local three-primary Redis Cluster, started on first use;
- ``orm_factory`` (per test, async): ``orm_factory(schema, backend="redis" | "upstash" |
  "cluster", **options)`` builds an ``Orm`` over a fresh client of that backend, on a server
  emptied before the test, and closes every client it made when the test ends.

``orm_factory`` is an async fixture: anyio runs it for anyio tests, pytest-asyncio for asyncio
tests (in strict mode too: the plugin hands it over, see ``pytest_fixture_setup``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, Protocol

import pytest
import redis

from .._model.schema import Schema
from .._orm import EvictionRule, Orm, create_orm
from ._cluster import LocalRedisCluster
from ._embedded import SERVER_FINDERS, EmbeddedRedis, ServerKind
from ._upstash_server import UpstashRestServer

PluginBackend = Literal["redis", "upstash", "cluster"]
PLUGIN_BACKENDS: tuple[str, ...] = ("redis", "upstash", "cluster")


class OrmFactory(Protocol):
    """What ``orm_factory`` gives a test."""

    def __call__(
        self,
        schema: Schema,
        *,
        backend: PluginBackend = "redis",
        max_attempts: int = 64,
        eviction: EvictionRule = "warn",
    ) -> Orm: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redis-orm-async", "redis-orm-async test servers")
    group.addoption(
        "--redis-orm-server",
        choices=sorted(SERVER_FINDERS),
        default=None,
        help="the embedded server of the redis_orm_server fixture (default: redis)",
    )
    parser.addini("redis_orm_server", "the embedded server: redis (6.2) or valkey (9)", default="redis")


def _server_kind(config: pytest.Config) -> ServerKind:
    chosen = config.getoption("redis_orm_server") or config.getini("redis_orm_server")
    if chosen not in SERVER_FINDERS:
        raise pytest.UsageError(f"redis_orm_server must be redis or valkey, not {chosen!r}")
    kind: ServerKind = chosen
    return kind


def pytest_configure(config: pytest.Config) -> None:
    """A server kind that does not exist is a usage error before any test runs."""
    _server_kind(config)


def flush(*ports: int) -> None:
    """Empty the private servers on these ports (every primary, for a cluster)."""
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=10) as client:
            client.flushall()


@pytest.fixture(scope="session")
def redis_orm_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    """A private embedded server for the whole session."""
    with EmbeddedRedis(server=_server_kind(request.config)) as server:
        yield server


@pytest.fixture
def redis_orm_url(redis_orm_server: EmbeddedRedis) -> str:
    """The session server's URL, emptied before the test: what one test writes, the next never
    sees."""
    flush(redis_orm_server.port)
    return redis_orm_server.url


@pytest.fixture(scope="session")
def redis_orm_upstash(redis_orm_server: EmbeddedRedis) -> Iterator[UpstashRestServer]:
    """The local Upstash REST server in front of the session server, with a random token."""
    with UpstashRestServer(redis_orm_server.url, token=secrets.token_urlsafe(24)) as server:
        yield server


@pytest.fixture(scope="session")
def redis_orm_cluster(request: pytest.FixtureRequest) -> Iterator[LocalRedisCluster]:
    """A private three-primary Redis Cluster, started only when a test first asks for it."""
    with LocalRedisCluster(server=_server_kind(request.config)) as cluster:
        yield cluster


def upstash_client(server: UpstashRestServer, token: str | None = None) -> Any:
    """The real ``upstash_redis`` async client on the local REST server: no retries (the ORM
    retries what is safe to retry) and no telemetry."""
    from upstash_redis.asyncio import Redis as UpstashRedis

    return UpstashRedis(
        url=server.url, token=server.token if token is None else token, rest_retries=0, allow_telemetry=False
    )


async def _close(client: Any) -> None:
    close = getattr(client, "aclose", None) or client.close
    await close()


@pytest.fixture
async def orm_factory(redis_orm_url: str, request: pytest.FixtureRequest) -> AsyncIterator[OrmFactory]:
    """``orm_factory(schema, backend=...)``: an ORM on an emptied private server of that backend."""
    import redis.asyncio as aioredis

    clients: list[Any] = []
    emptied: set[str] = {"redis", "upstash"}

    def build(
        schema: Schema,
        *,
        backend: PluginBackend = "redis",
        max_attempts: int = 64,
        eviction: EvictionRule = "warn",
    ) -> Orm:
        client: Any
        if backend == "redis":
            client = aioredis.Redis.from_url(redis_orm_url)
        elif backend == "upstash":
            client = upstash_client(request.getfixturevalue("redis_orm_upstash"))
        elif backend == "cluster":
            cluster: LocalRedisCluster = request.getfixturevalue("redis_orm_cluster")
            if "cluster" not in emptied:
                flush(*cluster.ports)
                emptied.add("cluster")
            client = aioredis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        else:
            raise ValueError(f"backend must be one of {', '.join(PLUGIN_BACKENDS)}, not {backend!r}")
        clients.append(client)
        return create_orm(schema, client, max_attempts=max_attempts, eviction=eviction)

    try:
        yield build
    finally:
        for client in clients:
            await _close(client)


ASYNC_FIXTURES: frozenset[Callable[..., Any]] = frozenset()
"""Filled below: this plugin's async fixture functions, which ``pytest_fixture_setup`` hands to
pytest-asyncio when an asyncio test asks for them."""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """Let pytest-asyncio run this plugin's async fixtures for the tests it runs.

    anyio runs any async fixture of an anyio test by itself. pytest-asyncio, in its default strict
    mode, runs only fixtures that ``@pytest_asyncio.fixture`` marked; marking ours for good would
    make it run them for anyio tests too, on another event loop. So the mark is set when an
    asyncio test sets the fixture up, and taken off when the fixture is torn down.
    """
    func: Any = fixturedef.func
    if (
        func in ASYNC_FIXTURES
        and "anyio_backend" not in request.fixturenames
        and request.config.pluginmanager.has_plugin("asyncio")
    ):
        func._force_asyncio_fixture = True  # @pytest_asyncio.fixture's own mark
        fixturedef.addfinalizer(lambda: _unmark(func))
    return (yield)


def _unmark(func: Callable[..., Any]) -> None:
    if hasattr(func, "_force_asyncio_fixture"):
        del func._force_asyncio_fixture


def _fixture_function(fixture: Any) -> Callable[..., Any]:
    """The function behind a ``@pytest.fixture`` definition (pytest 8.4+ wraps it)."""
    wrapped: Callable[..., Any] = getattr(fixture, "_get_wrapped_function", lambda: fixture)()
    return wrapped


ASYNC_FIXTURES = frozenset({_fixture_function(orm_factory)})
