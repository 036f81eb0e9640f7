"""What only Upstash has: its REST failures, its token, runtime detection, the Lua guard, the demo.

The repository behaviour itself runs on Upstash through ``make_orm`` like on every backend.
"""

from __future__ import annotations

import http.server
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import anyio
import pytest
import redis.asyncio as aioredis
from upstash_redis.asyncio import Redis as UpstashRedis

from redis_orm_async import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    OrmError,
    Schema,
    bootstrap_database,
    create_orm,
    create_orm_from_runtime,
)
from redis_orm_async._backends.upstash import UpstashBackend, map_upstash_error
from redis_orm_async._demo import run_demo
from redis_orm_async.testing import EmbeddedRedis, UpstashRestServer, free_port

from .conftest import upstash_client
from .models import User

SCHEMA = Schema([User])
WRONG_TOKEN = "wrong-token-Zx81"


def assert_secret_free(error: BaseException, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error) and secret not in repr(error)


async def test_runtime_helpers_detect_upstash(upstash_server: UpstashRestServer, raw: object) -> None:
    client = upstash_client(upstash_server)
    orm = await bootstrap_database(schema=SCHEMA, client=client)
    assert isinstance(orm.backend, UpstashBackend)
    caps = orm.capabilities
    assert caps.backend_kind == "upstash" and caps.optimistic_guard == "script"
    assert caps.supports_optimistic_concurrency and caps.supports_scripting
    assert caps.supports_transactions is False and caps.supports_cluster is False
    assert await orm.repo(User).count() == 0
    async with await create_orm_from_runtime(schema=SCHEMA, client=client) as scoped:
        assert await scoped.repo(User).count() == 0
    assert await client.ping() == "PONG", "the ORM does not close a client it was handed"
    await client.close()


async def test_a_wrong_token_is_an_authentication_error_without_the_token(
    upstash_server: UpstashRestServer, raw: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = upstash_client(upstash_server, token=WRONG_TOKEN)
    with pytest.raises(AuthenticationError) as detected:
        await create_orm_from_runtime(schema=SCHEMA, client=client)
    assert detected.value.code == "authentication_failed" and detected.value.backend_kind == "upstash"
    assert "refused the token" in str(detected.value)
    orm = create_orm(SCHEMA, client)
    users = orm.repo(User)
    with pytest.raises(AuthenticationError) as on_write:  # a pipeline: the client hides the reason
        await users.create(data={"email": "a@x.io", "age": 1})
    with pytest.raises(AuthenticationError) as on_read:
        await users.find_unique(where={"email": "a@x.io"})
    with pytest.raises(AuthenticationError) as on_batch:
        await orm.backend.atomic([("SET", "k", "v")])
    for error in (detected.value, on_write.value, on_read.value, on_batch.value):
        assert_secret_free(error, WRONG_TOKEN, upstash_server.token)
    assert WRONG_TOKEN not in repr(orm.backend) and WRONG_TOKEN not in repr(orm)
    assert WRONG_TOKEN not in caplog.text
    await client.close()


def test_the_token_is_scrubbed_from_any_message() -> None:
    from upstash_redis.errors import UpstashError

    for raw_error in (UpstashError(f"ERR echo {WRONG_TOKEN}"), OSError(f"refused for {WRONG_TOKEN}")):
        error = map_upstash_error(raw_error, WRONG_TOKEN)
        assert isinstance(error, BackendError) and WRONG_TOKEN not in str(error)
        assert error.cause is not None and WRONG_TOKEN not in str(error.cause)
        assert type(error.cause) is type(raw_error)


async def test_an_unreachable_rest_server_is_unavailable_and_retryable() -> None:
    client = UpstashRedis(url=f"http://127.0.0.1:{free_port()}", token="t0k3n", rest_retries=0)
    orm = create_orm(SCHEMA, client)
    for operation in (
        orm.ping(),
        orm.repo(User).create(data={"email": "a@x.io", "age": 1}),
        orm.repo(User).count(),
        orm.backend.atomic([("SET", "k", "v")]),
    ):
        with pytest.raises(BackendUnavailableError) as caught:
            await operation
        assert caught.value.retryable and caught.value.backend_kind == "upstash"
        assert isinstance(caught.value.cause, Exception) and not isinstance(caught.value.cause, OrmError)
        assert_secret_free(caught.value, "t0k3n")
    await client.close()


async def test_rest_server_up_but_redis_gone_is_unavailable() -> None:
    redis_server = EmbeddedRedis().start()
    with UpstashRestServer(redis_server.url, token="tk", socket_timeout=2) as rest:
        client = upstash_client(rest)
        orm = create_orm(SCHEMA, client)
        users = orm.repo(User)
        await users.create(data={"email": "a@x.io", "age": 1})
        redis_server.stop()
        with pytest.raises(BackendUnavailableError) as on_write:
            await users.create(data={"email": "b@x.io", "age": 1})
        with pytest.raises(BackendUnavailableError):
            await users.find_unique(where={"email": "a@x.io"})
        with pytest.raises(BackendUnavailableError):
            await orm.backend.atomic([("SET", "k", "v")])
        assert on_write.value.retryable
        await client.close()


class _BadGateway(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def bad_gateway() -> Iterator[str]:
    """A proxy in front of Upstash that answers HTML instead of JSON."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BadGateway)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_body_that_is_not_json_is_unavailable_and_not_retried_by_the_client(bad_gateway: str) -> None:
    client = UpstashRedis(url=bad_gateway, token="tk", rest_retries=0)
    orm = create_orm(SCHEMA, client)
    with anyio.fail_after(2):  # the client's own retry would sleep 3 s
        with pytest.raises(BackendUnavailableError, match="not JSON"):
            await orm.ping()
        with pytest.raises(BackendUnavailableError):
            await orm.repo(User).create(data={"email": "a@x.io", "age": 1})
    await client.close()


async def test_a_request_that_outlives_the_timeout_is_unavailable_and_writes_nothing_half(
    redis_server: EmbeddedRedis, upstash_server: UpstashRestServer, raw: aioredis.Redis
) -> None:
    blocker = aioredis.Redis.from_url(redis_server.url)
    client = upstash_client(upstash_server)
    orm = create_orm(SCHEMA, UpstashBackend(client, timeout=0.2))
    async with anyio.create_task_group() as group:
        group.start_soon(blocker.execute_command, "DEBUG", "SLEEP", "1")
        await anyio.sleep(0.1)
        with pytest.raises(BackendUnavailableError):
            await orm.repo(User).create(data={"email": "slow@x.io", "age": 1})
    report = await orm.audit(User)
    assert report.ok and report.records == 0, str(report)
    await blocker.aclose()
    await client.close()


async def test_binary_arguments_are_refused_clearly(upstash_server: UpstashRestServer, raw: object) -> None:
    """A capability difference: redis-py can send bytes that are not UTF-8, the REST API cannot."""
    client = upstash_client(upstash_server)
    backend = UpstashBackend(client)
    with pytest.raises(BackendError, match="binary"):
        await backend.execute(("SET", "k", b"\xff\xfe"))  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="UTF-8"):
        await backend.execute(("GET", "\ud800"))
    await client.close()


async def test_without_watch_a_read_then_write_is_refused_clearly(
    upstash_server: UpstashRestServer, raw: aioredis.Redis
) -> None:
    """A capability difference: Upstash's REST API has no WATCH, so writes run as scripts and the
    WATCH fallback that a Redis server without scripts gets does not exist here."""
    client = upstash_client(upstash_server)
    backend = UpstashBackend(client)
    assert backend.features.watch is False
    with pytest.raises(BackendError, match="no WATCH"):
        await backend.guarded(["{t}s"], [("GET", "{t}s")], lambda replies: [("SET", "{t}s", "1")])
    assert await raw.exists("{t}s") == 0
    await client.close()


async def test_writes_cost_one_round_trip_and_survive_a_script_flush(
    upstash_server: UpstashRestServer, raw: aioredis.Redis
) -> None:
    client = upstash_client(upstash_server)
    orm = create_orm(SCHEMA, client)
    users = orm.repo(User)
    await users.create(data={"email": "a@x.io", "age": 1})
    await raw.script_flush()  # a failover or SCRIPT FLUSH: the adapter reloads the script once
    before = orm.backend.stats.round_trips
    await users.create(data={"email": "b@x.io", "age": 1})
    assert orm.backend.stats.round_trips - before == 2
    before = orm.backend.stats.round_trips
    await users.create(data={"email": "c@x.io", "age": 1})
    assert orm.backend.stats.round_trips - before == 1
    assert await users.count() == 3 and (await orm.audit(User)).ok
    await client.close()


async def test_demo_runs_on_upstash(redis_server: EmbeddedRedis, raw: object) -> None:
    lines: list[str] = []
    await run_demo(redis_server.url, backend="upstash", say=lines.append)
    text = "\n".join(lines)
    assert "connected to upstash" in text and "optimistic_guard='script'" in text
    assert "consumed once:    True; twice: None" in text and text.count("ok=True") == 3


def test_the_console_demo_on_upstash_starts_its_own_servers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redis_orm_async", "demo", "--backend", "upstash"],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "connected to upstash" in result.stdout and "ok=True" in result.stdout
