"""``create_orm(schema, url=...)``: the ORM builds, owns and closes its client; a client passed in
stays its caller's. On every backend, against real servers."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from redis_orm_async import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    Orm,
    Schema,
    UnsupportedClientError,
    create_orm,
)
from redis_orm_async.testing import EmbeddedRedis, LocalRedisCluster, UpstashRestServer

from .conftest import upstash_client
from .models import User

SCHEMA = Schema([User])


def url_for(backend_name: str, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The URL (and Upstash token) of the server under test."""
    if backend_name == "redis":
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        return server.url, None
    if backend_name == "upstash":
        rest: UpstashRestServer = request.getfixturevalue("upstash_server")
        return rest.url, rest.token
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    return f"redis+cluster://127.0.0.1:{cluster.ports[0]}", None


async def connected_clients(raw: Any) -> int:
    info = await raw.info("clients")
    if isinstance(info, dict) and "connected_clients" not in info:  # a cluster: one dict per node
        return sum(int(node["connected_clients"]) for node in info.values())
    return int(info["connected_clients"])


async def settled_clients(raw: Any, expected: int) -> int:
    """The server's client count once it has noticed closed sockets (it does so asynchronously)."""
    for _ in range(150):
        if (count := await connected_clients(raw)) == expected:
            return count
        await anyio.sleep(0.02)
    return await connected_clients(raw)


async def test_an_orm_built_from_a_url_works_and_closes_its_own_client(
    backend_name: str, raw: Any, request: pytest.FixtureRequest
) -> None:
    url, token = url_for(backend_name, request)
    before = await connected_clients(raw)
    async with create_orm(SCHEMA, url=url, token=token) as orm:
        assert orm.owns_client and orm.capabilities.backend_kind == backend_name
        created = await orm.repo(User).create({"email": "a@x.io", "age": 3})
        assert await orm.repo(User).find_unique({"email": "a@x.io"}) == created
        if backend_name != "upstash":
            assert await connected_clients(raw) > before
    if backend_name == "upstash":
        with pytest.raises(BackendError):  # the HTTP client is closed: nothing more is sent
            await orm.repo(User).count()
    else:
        assert await settled_clients(raw, before) == before, "the owned client's connections are closed"


async def test_aclose_leaves_a_client_passed_in_open(backend_name: str, raw: Any, make_orm: Any) -> None:
    orm: Orm = make_orm(SCHEMA)
    assert not orm.owns_client
    async with orm:
        await orm.repo(User).create({"email": "b@x.io", "age": 1})
    await orm.aclose()
    assert await orm.repo(User).count() == 1, "the caller's client still works after the ORM closed"


async def test_upstash_credentials_come_from_the_environment(
    upstash_server: UpstashRestServer, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTASH_REDIS_REST_URL", upstash_server.url)
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", upstash_server.token)
    async with create_orm(SCHEMA) as orm:
        assert orm.capabilities.backend_kind == "upstash" and orm.owns_client
        await orm.repo(User).create({"email": "env@x.io", "age": 1})
        assert await orm.repo(User).count() == 1
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", "wrong-token-value")
    with pytest.raises(AuthenticationError) as caught:
        async with create_orm(SCHEMA, url=upstash_server.url):
            pass
    assert "wrong-token-value" not in str(caught.value) and "wrong-token-value" not in repr(caught.value)


def test_an_upstash_url_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSTASH_REDIS_REST_TOKEN", raising=False)
    with pytest.raises(AuthenticationError, match="UPSTASH_REDIS_REST_TOKEN"):
        create_orm(SCHEMA, url="https://example.upstash.io")


def test_without_client_url_or_environment_create_orm_says_what_to_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UPSTASH_REDIS_REST_URL", raising=False)
    with pytest.raises(UnsupportedClientError, match=r"url='redis://host:6379'"):
        create_orm(SCHEMA)


def test_unknown_schemes_and_mixed_arguments_are_refused_without_the_password() -> None:
    with pytest.raises(UnsupportedClientError, match=r"redis://, rediss://") as caught:
        create_orm(SCHEMA, url="mysql://admin:hunter22@db.example:3306/app?password=hunter22")
    assert "hunter22" not in str(caught.value)
    with pytest.raises(UnsupportedClientError, match="a client or a url"):
        create_orm(SCHEMA, aioredis.Redis(), url="redis://localhost")
    with pytest.raises(UnsupportedClientError, match="token= is for Upstash"):
        create_orm(SCHEMA, url="redis://localhost", token="t")


async def test_a_wrong_password_in_the_url_is_refused_without_echoing_it() -> None:
    async with EmbeddedRedis(args=["--requirepass", "right-secret"]) as server:
        host, port = server.url.removeprefix("redis://").split("/")[0].split(":")
        with pytest.raises(AuthenticationError) as caught:
            async with create_orm(SCHEMA, url=f"redis://:wrong-secret@{host}:{port}"):
                pass
        assert "wrong-secret" not in str(caught.value) and "wrong-secret" not in repr(caught.value)
        async with create_orm(SCHEMA, url=f"redis://:right-secret@{host}:{port}") as orm:
            assert await orm.repo(User).count() == 0


async def test_rediss_speaks_tls(redis_server: EmbeddedRedis) -> None:
    """A rediss:// URL makes a TLS client: against a plain server its handshake fails, as an
    unavailable backend (the connection check closes the owned client)."""
    url = redis_server.url.replace("redis://", "rediss://", 1)
    orm = create_orm(SCHEMA, url=url, client_options={"socket_connect_timeout": 2, "socket_timeout": 2})
    with pytest.raises(BackendUnavailableError):
        async with orm:
            pass


async def test_client_options_reach_the_client(redis_server: EmbeddedRedis, raw: Any) -> None:
    async with create_orm(SCHEMA, url=redis_server.url, client_options={"client_name": "orm-app"}) as orm:
        await orm.repo(User).count()
        names = [client["name"] for client in await raw.client_list()]
    assert "orm-app" in names
    assert orm.owns_client


def test_the_cluster_url_builds_a_cluster_orm() -> None:
    orm = create_orm(SCHEMA, url="redis+cluster://127.0.0.1:9")
    assert orm.capabilities.supports_cluster and orm.owns_client


async def test_passed_in_upstash_client_stays_open(upstash_server: UpstashRestServer, raw: Any) -> None:
    client = upstash_client(upstash_server)
    async with create_orm(SCHEMA, client) as orm:
        await orm.repo(User).create({"email": "u@x.io", "age": 1})
    assert await client.execute(["ping"]) == "PONG"
    await client.close()
