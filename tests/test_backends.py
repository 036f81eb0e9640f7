"""The backend protocol itself, on every backend: one result shape, one guard contract, one error
surface, and each backend's own round-trip numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_orm_async import BackendError, Orm, Schema
from redis_orm_async._backends.protocol import Backend, Command
from redis_orm_async._scripts import Script
from redis_orm_async.testing import EmbeddedRedis

from .models import User
from .strategies import ODD_TEXT

MakeOrm = Callable[..., Orm]
SCHEMA = Schema([User])

CAPABILITY_DIFFERENCES = {
    "redis": {"optimistic_guard": "script", "supports_scripting": True, "supports_watch_fallback": True},
    "upstash": {"optimistic_guard": "script", "supports_scripting": True, "supports_watch_fallback": False},
    "redis-cluster": {
        "optimistic_guard": "script",
        "supports_scripting": True,
        "supports_watch_fallback": True,
        "supports_cluster": True,
    },
}
"""What each backend really supports, where they differ; every other capability is shared."""

ONE_EACH = {"create": 1, "update": 1, "update_by_unique": 1, "delete": 1, "find": 1, "count": 1}
ROUND_TRIPS = {
    # every write is one EVALSHA of the write script, on every backend
    "redis": ONE_EACH,
    "upstash": ONE_EACH,
    "redis-cluster": ONE_EACH,
}


WATCH_ONLY = pytest.mark.parametrize("backend_name", ["redis", "redis-cluster"], indirect=True)
"""``guarded`` is the WATCH/MULTI/EXEC fallback; Upstash has no WATCH (tested in its own file)."""


def backend_of(make_orm: MakeOrm) -> Backend:
    return make_orm(SCHEMA).backend


async def test_replies_come_back_in_one_shape(make_orm: MakeOrm) -> None:
    backend = backend_of(make_orm)
    commands: list[tuple[Command, Any]] = [
        (("SET", "{t}k", "v"), "OK"),
        (("SET", "{t}k", "w", "NX"), None),
        (("GET", "{t}nope"), None),
        (("HSET", "{t}h", "zero", 0, "empty", ""), 2),
        (("HGETALL", "{t}h"), {"zero": "0", "empty": ""}),
        (("HGETALL", "{t}missing"), {}),
        (("SADD", "{t}s", "only"), 1),
        (("SMEMBERS", "{t}s"), ["only"]),
        (("ZADD", "{t}z", float("inf"), "top", 1e20, "big", 1.5, "mid"), 3),
        (("ZSCORE", "{t}z", "top"), "inf"),
        (("ZSCORE", "{t}z", "big"), "1e+20"),
        (("ZRANGE", "{t}z", 0, -1, "WITHSCORES"), ["mid", "1.5", "big", "1e+20", "top", "inf"]),
        (("MGET", "{t}k", "{t}nope"), ["v", None]),
        (("SET", "{t}t", "true"), "OK"),
        (("GET", "{t}t"), "true"),
        (("SET", "{t}n", "a\x00b😀"), "OK"),
        (("GET", "{t}n"), "a\x00b😀"),
        (("SET", "{t}o", "OK"), "OK"),
        (("GET", "{t}o"), "OK"),
        (("INCRBYFLOAT", "{t}f", "1.5"), "1.5"),
        (("EXPIRE", "{t}k", 100), 1),
        (("TYPE", "{t}k"), "string"),
        (("PING",), "PONG"),
    ]
    for command, expected in commands:
        assert await backend.execute(command) == expected, command
    batch: list[tuple[Command, Any]] = [
        (("GET", "{t}t"), "true"),
        (("GET", "{t}n"), "a\x00b😀"),
        (("TYPE", "{t}k"), "string"),
        (("PING",), "PONG"),
    ]
    assert await backend.pipeline([c for c, _ in batch]) == [e for _, e in batch]
    assert await backend.atomic([("INCR", "{t}c"), ("INCR", "{t}c"), ("GET", "{t}c")]) == [1, 2, "2"]
    assert await backend.pipeline([]) == [] and await backend.atomic([]) == []
    seconds, micros = await backend.execute(("TIME",))
    assert isinstance(seconds, str) and seconds.isdigit() and isinstance(micros, str)
    script = Script("shape", "return {1, false, 'x', {ok = 'OK'}, 2.7, {KEYS[1], ARGV[1]}}")
    assert await backend.eval(script, ["key"], [0]) == [1, None, "x", "OK", 2, ["key", "0"]]
    assert await backend.eval(script, ["key"], [0]) == [1, None, "x", "OK", 2, ["key", "0"]]


async def test_capability_differences_are_declared(make_orm: MakeOrm, backend_name: str) -> None:
    caps = make_orm(SCHEMA).capabilities
    declared = CAPABILITY_DIFFERENCES.get(backend_name)
    assert declared is not None, f"declare the {backend_name} capabilities in CAPABILITY_DIFFERENCES"
    assert {name: getattr(caps, name) for name in declared} == declared
    assert caps.backend_kind == backend_name and caps.supports_optimistic_concurrency
    assert caps.supports_transactions is False and caps.supports_atomic_writes


async def test_stored_binary_that_is_not_utf8_is_a_backend_error(
    make_orm: MakeOrm, redis_server: EmbeddedRedis, raw: aioredis.Redis
) -> None:
    backend = backend_of(make_orm)
    await raw.set("{t}bin", b"\xff\xfe")
    with pytest.raises(BackendError):
        await backend.execute(("GET", "{t}bin"))
    assert await backend.execute(("PING",)) == "PONG"


async def test_arguments_that_cannot_be_sent_are_backend_errors(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    backend = backend_of(make_orm)
    for bad in (True, None, object()):
        with pytest.raises(BackendError):
            await backend.execute(("SET", "{t}k", bad))  # type: ignore[arg-type]
    assert await raw.exists("{t}k") == 0
    assert await backend.execute(("SET", "{t}k", b"utf-8 text \xc3\xa9")) == "OK"  # type: ignore[arg-type]
    assert await raw.get("{t}k") == "utf-8 text é"


@WATCH_ONLY
async def test_guarded_applies_when_the_reads_still_hold(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    backend = backend_of(make_orm)
    await raw.hset("{t}h", mapping={"a": "1", "b": ""})
    await raw.set("{t}c", "x")
    reads: list[Command] = [("HGETALL", "{t}h"), ("MGET", "{t}c", "{t}d"), ("ZSCORE", "{t}z", "m"), ("TIME",)]
    seen: list[list[Any]] = []

    def plan(replies: list[Any]) -> list[Command]:
        seen.append(replies)
        return [("SET", "{t}d", "y"), ("HSET", "{t}h", "a", "2"), ("GET", "{t}d")]

    assert await backend.guarded(["{t}h", "{t}c", "{t}d", "{t}z"], reads, plan) == ["OK", 0, "y"]
    hash_reply, claims, score, _time = seen[0]
    assert hash_reply == {"a": "1", "b": ""}
    assert claims == ["x", None] and score is None
    assert await raw.get("{t}d") == "y" and await raw.hget("{t}h", "a") == "2"


@WATCH_ONLY
async def test_guarded_returns_none_when_a_read_changed_and_writes_nothing(
    make_orm: MakeOrm, raw: aioredis.Redis, redis_server: EmbeddedRedis
) -> None:
    backend = backend_of(make_orm)
    await raw.set("{t}claim", "mine")
    meddler: Any = (
        redis.RedisCluster(host="127.0.0.1", port=raw.get_default_node().port)
        if backend.features.kind == "redis-cluster"
        else redis.Redis.from_url(redis_server.url)
    )

    def plan(replies: list[Any]) -> list[Command]:
        meddler.set("{t}claim", "theirs")  # another writer lands between the reads and the write
        return [("SET", "{t}written", "1")]

    try:
        assert await backend.guarded(["{t}claim"], [("MGET", "{t}claim")], plan) is None
    finally:
        meddler.close()
    assert await raw.exists("{t}written") == 0


@WATCH_ONLY
async def test_guarded_re_raises_the_plans_error_and_allows_an_empty_plan(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    backend = backend_of(make_orm)

    class Refused(Exception):
        pass

    def refuse(replies: list[Any]) -> list[Command]:
        raise Refused("no")

    with pytest.raises(Refused):
        await backend.guarded(["{t}k"], [("GET", "{t}k")], refuse)
    assert await backend.guarded(["{t}k"], [("GET", "{t}k")], lambda replies: []) == []
    assert await backend.guarded([], [], lambda replies: [("SET", "{t}k", "1")]) == ["OK"]
    assert await raw.get("{t}k") == "1"
    # the connection or session is still usable after each outcome
    assert await backend.execute(("GET", "{t}k")) == "1"


@WATCH_ONLY
async def test_guarded_reads_of_many_keys(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    backend = backend_of(make_orm)
    keys = [f"{{t}}claim:{n}" for n in range(15_000)]
    await raw.mset({key: "x" for key in keys[::7]})
    seen: list[list[Any]] = []

    def plan(replies: list[Any]) -> list[Command]:
        seen.append(replies[0])
        return [("SET", "{t}done", "1")]

    assert await backend.guarded(keys, [("MGET", *keys)], plan) == ["OK"]
    assert seen[0] == ["x" if n % 7 == 0 else None for n in range(15_000)]


@WATCH_ONLY
async def test_a_failing_write_is_a_backend_error_and_the_others_still_apply(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    """The MULTI/EXEC rule on every backend: a runtime error does not stop the other commands."""
    backend = backend_of(make_orm)
    await raw.set("{t}text", "x")
    writes: list[Command] = [("SET", "{t}a", "1"), ("HSET", "{t}text", "f", "v"), ("SET", "{t}b", "2")]
    with pytest.raises(BackendError, match="WRONGTYPE"):
        await backend.guarded(["{t}a"], [("GET", "{t}a")], lambda replies: writes)
    assert await raw.mget("{t}a", "{t}b") == ["1", "2"]
    await raw.delete("{t}a", "{t}b")
    with pytest.raises(BackendError, match="WRONGTYPE"):
        await backend.atomic(writes)
    assert await raw.mget("{t}a", "{t}b") == ["1", "2"]
    with pytest.raises(BackendError, match="WRONGTYPE"):
        await backend.pipeline([("GET", "{t}text"), ("HGET", "{t}text", "f")])


async def test_a_malformed_command_discards_the_whole_atomic_batch(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    backend = backend_of(make_orm)
    with pytest.raises(BackendError) as caught:
        await backend.atomic([("SET", "{t}a", "1"), ("NOSUCHCOMMAND", "{t}x")])
    assert caught.value.code == "backend_error" and not caught.value.retryable
    assert await raw.exists("{t}a") == 0
    with pytest.raises(BackendError):
        await backend.execute(("NOSUCHCOMMAND",))
    with pytest.raises(BackendError, match="wrong number of arguments"):
        await backend.execute(("GET",))


async def test_a_lua_error_is_a_backend_error(make_orm: MakeOrm) -> None:
    backend = backend_of(make_orm)
    with pytest.raises(BackendError):
        await backend.eval(Script("bad", "return redis.call('NOSUCHCOMMAND')"), [], [])
    with pytest.raises(BackendError):
        await backend.eval(Script("broken", "this is not lua"), [], [])


@WATCH_ONLY
@settings(max_examples=40)
@given(
    fields=st.dictionaries(ODD_TEXT, ODD_TEXT | st.sampled_from(["0", "", "OK", "true", "null", "-1"])),
    members=st.lists(ODD_TEXT, max_size=6),
    value=st.none() | ODD_TEXT,
)
async def test_guard_compares_every_reply_shape_exactly(
    make_orm: MakeOrm, raw: aioredis.Redis, fields: dict[str, str], members: list[str], value: str | None
) -> None:
    """What the reads returned, re-read unchanged, always lets the write through."""
    backend = backend_of(make_orm)
    await raw.flushdb()
    if fields:
        await raw.hset("{t}h", mapping=cast(Any, fields))
    if members:
        await raw.sadd("{t}s", *members)
        await raw.zadd("{t}z", {m: n for n, m in enumerate(members)})
    if value is not None:
        await raw.set("{t}v", value)
    reads: list[Command] = [
        ("HGETALL", "{t}h"),
        ("SMEMBERS", "{t}s"),
        ("ZRANGE", "{t}z", 0, -1, "WITHSCORES"),
        ("MGET", "{t}v", "{t}none"),
        ("ZSCORE", "{t}z", members[0] if members else "x"),
        ("EXISTS", "{t}h"),
        ("TIME",),
    ]
    result = await backend.guarded(
        ["{t}h", "{t}s", "{t}z", "{t}v"], reads, lambda replies: [("SET", "{t}done", "1")]
    )
    assert result == ["OK"]


async def test_round_trips_per_operation(make_orm: MakeOrm, backend_name: str) -> None:
    expected = ROUND_TRIPS.get(backend_name)
    assert expected is not None, f"add the {backend_name} round-trip numbers to ROUND_TRIPS"
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    measured: dict[str, int] = {}

    async def measure(name: str, operation: Any) -> None:
        before = orm.backend.stats.round_trips
        await operation
        measured[name] = orm.backend.stats.round_trips - before

    await users.count()  # loads the count script, so that every backend measures the cached path
    await measure("count", users.count())
    await measure("create", users.create(data={"email": "a@x.io", "age": 1}))
    user = await users.create(data={"email": "b@x.io", "age": 2})
    await measure("update", users.update(where={"id": user.id}, data={"age": 3}))
    await measure("update_by_unique", users.update(where={"email": "b@x.io"}, data={"age": 4}))
    await measure("find", users.find_unique(where={"id": user.id}))
    await measure("delete", users.delete(where={"id": user.id}))
    assert measured == expected
    assert (await orm.audit(User)).ok


def test_the_redis_py_internals_the_adapters_use_are_there() -> None:
    """The redis-py adapters write and read packed commands on pooled connections directly, as
    redis-py's own pipeline does; pyproject pins the redis-py range, and this names what they
    rely on, so an upgrade that moves it fails here first."""
    import redis as redis_package
    from redis.asyncio.cluster import ClusterNode, NodesManager
    from redis.asyncio.connection import AbstractConnection, ConnectionPool

    major = int(redis_package.__version__.split(".")[0])
    assert 5 <= major < 9
    for owner, names in [
        (AbstractConnection, ["pack_commands", "send_packed_command", "read_response", "disconnect"]),
        (ConnectionPool, ["get_connection", "release"]),
        (ClusterNode, ["acquire_connection", "release", "disconnect_if_needed"]),
        (NodesManager, ["get_node_from_slot", "initialize"]),
        (aioredis.RedisCluster, ["keyslot", "get_default_node", "initialize"]),
    ]:
        for name in names:
            assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name}"
