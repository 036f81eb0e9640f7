"""The local Upstash REST server, driven by the real ``upstash_redis`` asyncio client.

These tests pin both the server's protocol behaviour and the client quirks the ORM's Upstash
adapter has to live with, so each assertion checks what actually reaches redis or the wire.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from upstash_redis.asyncio import Redis as UpstashRedis
from upstash_redis.errors import UpstashError

from redis_orm_async.testing._embedded import EmbeddedRedis
from redis_orm_async.testing._upstash_server import UpstashRestServer

TOKEN = "t0ken-Secret_4f9a2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
B64 = {**AUTH, "Upstash-Encoding": "base64"}
ENCODINGS = ["base64", None]

ODD_STRINGS = [
    ":",
    "{",
    "}",
    "*",
    "$",
    "+OK",
    "-ERR not really",
    "OK",
    "PONG",
    "",
    " ",
    "line\nbreak",
    "crlf\r\ninside",
    "nul\x00inside\x00",
    'tab\tand \\ backslash "quote"',
    "emoji 🙂🚀 and ünïcödé 中文",
    "null",
    "true",
    '{"json": [1, 2]}',
    "*3\r\n$3\r\nSET\r\n",
]


def _key(name: str) -> str:
    return f"test:{name}:{uuid.uuid4().hex}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("upstash-rest")]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def private_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="module")
def rest(private_redis: EmbeddedRedis) -> Iterator[UpstashRestServer]:
    with UpstashRestServer(private_redis.url, TOKEN) as server:
        yield server


@pytest.fixture
def rawsync(private_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()


def _client(server: UpstashRestServer, encoding: str | None = "base64", token: str = TOKEN) -> UpstashRedis:
    return UpstashRedis(
        url=server.url,
        token=token,
        rest_encoding=encoding,
        rest_retries=0,
        allow_telemetry=False,
    )


@pytest.fixture(params=ENCODINGS, ids=["base64", "plain"])
async def client(
    rest: UpstashRestServer, request: pytest.FixtureRequest, anyio_backend: str
) -> AsyncIterator[UpstashRedis]:
    c = _client(rest, request.param)
    yield c
    await c.close()


@pytest.fixture
async def b64_client(rest: UpstashRestServer, anyio_backend: str) -> AsyncIterator[UpstashRedis]:
    c = _client(rest, "base64")
    yield c
    await c.close()


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


@pytest.mark.anyio
@pytest.mark.parametrize("value", ODD_STRINGS)
async def test_odd_strings_round_trip(client: UpstashRedis, rawsync: redis.Redis, value: str) -> None:
    key = _key("odd")
    assert await client.set(key, value) is True
    assert await client.get(key) == value
    assert rawsync.get(key) == value.encode()


@pytest.mark.anyio
async def test_one_megabyte_string(client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("big")
    value = ("ab:{*\n🙂" * 200_000)[:1_000_000]
    assert await client.set(key, value) is True
    assert await client.get(key) == value
    assert await client.strlen(key) == len(value.encode())
    assert rawsync.get(key) == value.encode()


@pytest.mark.anyio
@given(value=st.text(max_size=300), key_suffix=st.text(min_size=0, max_size=40))
@settings(max_examples=50, deadline=None)
async def test_text_round_trip_property(
    rest: UpstashRestServer, private_redis: EmbeddedRedis, value: str, key_suffix: str
) -> None:
    key = "prop:" + key_suffix
    plain, encoded = _client(rest, None), _client(rest, "base64")
    try:
        assert await plain.set(key, value) is True
        assert await plain.get(key) == value
        assert await encoded.get(key) == value
        assert await encoded.hset(key + ":h", values={value or "empty": value}) in (0, 1)
        assert await encoded.hget(key + ":h", value or "empty") == value
        assert await encoded.delete(key, key + ":h") == 2
    finally:
        await plain.close()
        await encoded.close()


@pytest.mark.anyio
@given(
    value=st.one_of(
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    )
)
@settings(max_examples=50, deadline=None)
async def test_scalar_argument_conversion_property(
    rest: UpstashRestServer, private_redis: EmbeddedRedis, value: Any
) -> None:
    if isinstance(value, bool):
        expected = "true" if value else "false"
    elif isinstance(value, float):
        expected = repr(value)
    elif value is None:
        expected = "null"
    else:
        expected = str(value)
    c = _client(rest)
    raw_client = redis.Redis.from_url(private_redis.url)
    try:
        assert await c.set("prop:scalar", value) is True
        assert raw_client.get("prop:scalar") == expected.encode()
        assert await c.get("prop:scalar") == expected
    finally:
        await c.close()
        raw_client.close()


@pytest.mark.anyio
async def test_argument_conversion_through_client(b64_client: UpstashRedis, rawsync: redis.Redis) -> None:
    cases: list[tuple[Any, bytes]] = [
        (42, b"42"),
        (-7, b"-7"),
        (2**70, str(2**70).encode()),
        (2.5, b"2.5"),
        (1e20, b"1e+20"),
        (-0.0, b"-0.0"),
        (True, b"true"),
        (False, b"false"),
        (None, b"null"),
        # The client json.dumps dicts itself, with its default separators.
        ({"a": 1}, b'{"a": 1}'),
    ]
    for value, stored in cases:
        key = _key("conv")
        assert await b64_client.set(key, value) is True
        assert rawsync.get(key) == stored, value


@pytest.mark.anyio
async def test_json_argument_conversion_on_the_wire(
    rest: UpstashRestServer, http: httpx.AsyncClient, rawsync: redis.Redis
) -> None:
    cases: list[tuple[str, bytes]] = [
        ("1.5", b"1.5"),
        ("1e+20", b"1e+20"),
        ("100000000000000000000000", b"100000000000000000000000"),
        ("true", b"true"),
        ("false", b"false"),
        ("null", b"null"),
        ('{"a": [1, "x", null], "b": {}}', b'{"a":[1,"x",null],"b":{}}'),
        ('[1, "two", 3.5]', b'[1,"two",3.5]'),
        ('"\\u00e9\\ud83d\\ude42"', "é🙂".encode()),
    ]
    for text, stored in cases:
        key = _key("wire")
        body = f'["SET", {json.dumps(key)}, {text}]'
        resp = await http.post(rest.url, content=body, headers=AUTH)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"result": "OK"}
        assert rawsync.get(key) == stored, text


@pytest.mark.anyio
async def test_lone_surrogate_is_a_bad_request(rest: UpstashRestServer, http: httpx.AsyncClient) -> None:
    resp = await http.post(rest.url, content='["SET", "k", "\\ud800"]', headers=AUTH)
    assert resp.status_code == 400
    assert "error" in resp.json()


@pytest.mark.anyio
async def test_hash_set_sorted_set_and_counters(client: UpstashRedis) -> None:
    h, s, z, n = _key("h"), _key("s"), _key("z"), _key("n")
    assert await client.hset(h, values={"a": "1", "b": "x:y", "c": "🙂"}) == 3
    assert await client.hset(h, "a", "2") == 0
    assert await client.hgetall(h) == {"a": "2", "b": "x:y", "c": "🙂"}
    assert await client.hgetall(_key("missing")) == {}

    assert await client.sadd(s, "x", "y", "z", "x") == 3
    members = await client.smembers(s)
    assert isinstance(members, list)  # redis-py would give a set
    assert sorted(members) == ["x", "y", "z"]

    assert await client.zadd(z, scores={"a": 1.5, "b": 0.25, "c": 3}) == 3
    assert await client.zrange(z, 0, -1, withscores=True) == [
        ("b", 0.25),
        ("a", 1.5),
        ("c", 3.0),
    ]
    assert await client.zrange(z, 0, -1) == ["b", "a", "c"]
    assert await client.zscore(z, "a") == 1.5

    assert await client.incr(n) == 1
    assert await client.incrby(n, 41) == 42
    assert await client.incrbyfloat(n, 0.5) == 42.5
    assert await client.get(n) == "42.5"
    assert await client.get(_key("missing")) is None
    assert await client.mget(n, _key("missing")) == ["42.5", None]


@pytest.mark.anyio
async def test_statuses_are_decoded(client: UpstashRedis) -> None:
    key = _key("type")
    assert await client.ping() == "PONG"
    assert await client.ping("hello") == "hello"
    assert await client.type(key) == "none"
    await client.set(key, "v")
    assert await client.type(key) == "string"
    await client.hset(key + "h", "f", "v")
    assert await client.type(key + "h") == "hash"


@pytest.mark.anyio
async def test_base64_wire_format(
    rest: UpstashRestServer, http: httpx.AsyncClient, rawsync: redis.Redis
) -> None:
    key = _key("wire64")

    async def call(body: Any, headers: dict[str, str] = B64) -> httpx.Response:
        return await http.post(rest.url, json=body, headers=headers)

    assert (await call(["SET", key, "OK"])).json() == {"result": "OK"}  # status OK stays plain
    assert (await call(["GET", key])).json() == {"result": _b64("OK")}  # bulk "OK" is encoded
    assert (await call(["PING"])).json() == {"result": _b64("PONG")}
    assert (await call(["TYPE", key])).json() == {"result": _b64("string")}
    assert (await call(["STRLEN", key])).json() == {"result": 2}
    assert (await call(["GET", _key("nope")])).json() == {"result": None}
    rawsync.rpush(key + "l", "a", "b")
    assert (await call(["LRANGE", key + "l", 0, -1])).json() == {"result": [_b64("a"), _b64("b")]}
    resp = await call(["INCR", key])
    assert resp.status_code == 400
    assert resp.json() == {"error": "ERR value is not an integer or out of range"}
    # Without the header everything is plain text.
    assert (await call(["PING"], AUTH)).json() == {"result": "PONG"}
    assert (await call(["GET", key], AUTH)).json() == {"result": "OK"}


@pytest.mark.anyio
async def test_non_utf8_values(client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("bin")
    rawsync.set(key, b"\xff\xfeok")
    if client._headers.get("Upstash-Encoding") == "base64":
        # Client quirk: it decodes base64 payloads as strict UTF-8.
        with pytest.raises(UnicodeDecodeError):
            await client.get(key)
    else:
        assert await client.get(key) == "\ufffd\ufffdok"


@pytest.mark.anyio
async def test_pipeline(client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("pipe")
    p = client.pipeline()
    p.set(key, "1").incr(key).get(key).ping().hset(key + "h", values={"f": "v"})
    p.hgetall(key + "h")
    assert await p.exec() == [True, 2, "2", "PONG", 1, {"f": "v"}]
    assert await client.pipeline().exec() == []
    big = client.pipeline()
    for i in range(1000):
        big.set(f"{key}:{i}", "x" * 1000)
    assert await big.exec() == [True] * 1000
    assert rawsync.strlen(f"{key}:999") == 1000


@pytest.mark.anyio
async def test_pipeline_entry_error(
    b64_client: UpstashRedis, rawsync: redis.Redis, rest: UpstashRestServer, http: httpx.AsyncClient
) -> None:
    key = _key("pipeerr")
    p = b64_client.pipeline()
    p.set(key, "text").incr(key).set(key + "2", "after")
    with pytest.raises(UpstashError, match="not an integer"):
        await p.exec()
    # The client loses the other results, but every command did run.
    assert rawsync.get(key) == b"text"
    assert rawsync.get(key + "2") == b"after"

    resp = await http.post(
        rest.url + "/pipeline",
        json=[["SET", key, "v"], ["INCR", key], ["GET", key], ["NOSUCHCMD"], ["PING"]],
        headers=B64,
    )
    assert resp.status_code == 200
    entries = resp.json()
    assert entries[0] == {"result": "OK"}
    assert entries[1] == {"error": "ERR value is not an integer or out of range"}
    assert entries[2] == {"result": _b64("v")}
    assert set(entries[3]) == {"error"} and "unknown command" in entries[3]["error"]
    assert entries[4] == {"result": _b64("PONG")}


def _multi_exec_stats(rawsync: redis.Redis) -> tuple[int, int]:
    stats = rawsync.info("commandstats")
    return (
        int(stats.get("cmdstat_multi", {}).get("calls", 0)),
        int(stats.get("cmdstat_exec", {}).get("calls", 0)),
    )


def _clients_in_multi(rawsync: redis.Redis) -> list[dict[str, Any]]:
    return [c for c in rawsync.client_list() if "x" in c["flags"]]


@pytest.mark.anyio
async def test_multi_runs_inside_a_transaction(client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("multi")
    before = _multi_exec_stats(rawsync)
    m = client.multi()
    m.set(key, "1").incr(key).get(key)
    assert await m.exec() == [True, 2, "2"]
    after = _multi_exec_stats(rawsync)
    assert after[0] == before[0] + 1
    assert after[1] == before[1] + 1
    assert _clients_in_multi(rawsync) == []


@pytest.mark.anyio
async def test_multi_is_atomic_under_concurrency(b64_client: UpstashRedis) -> None:
    key = _key("atomic")
    results: list[list[Any]] = []

    async def one() -> None:
        m = b64_client.multi()
        m.incr(key).incr(key).incr(key)
        results.append(await m.exec())

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(one)
    assert len(results) == 30
    for a, b, c in results:
        assert (b, c) == (a + 1, a + 2), (a, b, c)
    assert sorted(r[0] for r in results) == list(range(1, 90, 3))


@pytest.mark.anyio
async def test_multi_runtime_error_keeps_other_commands(
    rest: UpstashRestServer, http: httpx.AsyncClient, rawsync: redis.Redis
) -> None:
    key = _key("multirt")
    rawsync.set(key, "text")
    resp = await http.post(
        rest.url + "/multi-exec",
        json=[["SET", key + "a", "1"], ["INCR", key], ["GET", key + "a"]],
        headers=B64,
    )
    assert resp.status_code == 200
    assert resp.json() == [
        {"result": "OK"},
        {"error": "ERR value is not an integer or out of range"},
        {"result": _b64("1")},
    ]
    assert rawsync.get(key + "a") == b"1"


@pytest.mark.anyio
async def test_execabort_is_one_error_object(
    rest: UpstashRestServer,
    http: httpx.AsyncClient,
    b64_client: UpstashRedis,
    rawsync: redis.Redis,
) -> None:
    key = _key("abort")
    resp = await http.post(
        rest.url + "/multi-exec",
        json=[["SET", key, "1"], ["SET", key], ["INCR", key]],
        headers=B64,
    )
    assert resp.status_code == 400
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}
    assert body["error"].startswith("EXECABORT")
    assert "wrong number of arguments" in body["error"]
    assert rawsync.exists(key) == 0
    assert _clients_in_multi(rawsync) == []

    # Client bug the ORM adapter must handle: it iterates the dict and crashes.
    m = b64_client.multi()
    m.set(key, "1").execute(["NOSUCHCMD", key])
    with pytest.raises(AttributeError):
        await m.exec()
    assert rawsync.exists(key) == 0
    assert _clients_in_multi(rawsync) == []
    # Pooled connections are clean afterwards: a plain SET is not QUEUED.
    for _ in range(10):
        assert await b64_client.set(key, "v") is True
    assert rawsync.get(key) == b"v"


REFUSED = [
    ["MULTI"],
    ["EXEC"],
    ["DISCARD"],
    ["WATCH", "k"],
    ["UNWATCH"],
    ["SELECT", "1"],
    ["select", "1"],
    ["SUBSCRIBE", "chan"],
    ["PSUBSCRIBE", "ch*"],
    ["MONITOR"],
    ["HELLO", "3"],
    ["QUIT"],
    ["AUTH", "whatever"],
    ["BLPOP", "k", 0],
    ["brpop", "k", 1],
    ["BZPOPMIN", "k", 0],
    ["BLMOVE", "a", "b", "LEFT", "RIGHT", 0],
    ["XREAD", "BLOCK", 0, "STREAMS", "s", "$"],
    ["CLIENT", "REPLY", "OFF"],
]


@pytest.mark.anyio
@pytest.mark.parametrize("command", REFUSED, ids=lambda c: "-".join(map(str, c)))
async def test_refused_commands(
    command: list[Any],
    b64_client: UpstashRedis,
    rest: UpstashRestServer,
    http: httpx.AsyncClient,
) -> None:
    with pytest.raises(UpstashError, match="not available"):
        await b64_client.execute(command)
    resp = await http.post(rest.url, json=command, headers=B64)
    assert resp.status_code == 400
    assert "error" in resp.json()
    # The connection state is untouched: the next command behaves normally, in db 0.
    key = _key("after")
    assert await b64_client.set(key, "v") is True
    assert await b64_client.get(key) == "v"
    assert await b64_client.ping() == "PONG"


@pytest.mark.anyio
async def test_refused_commands_in_batches(
    rest: UpstashRestServer, http: httpx.AsyncClient, rawsync: redis.Redis
) -> None:
    key = _key("batchrefuse")
    resp = await http.post(
        rest.url + "/pipeline",
        json=[["SET", key, "1"], ["WATCH", key], ["MULTI"], ["INCR", key]],
        headers=AUTH,
    )
    assert resp.status_code == 200
    entries = resp.json()
    assert entries[0] == {"result": "OK"}
    assert "not available" in entries[1]["error"]
    assert "not available" in entries[2]["error"]
    assert entries[3] == {"result": 2}

    resp = await http.post(
        rest.url + "/multi-exec", json=[["SET", key, "9"], ["BLPOP", "l", 0]], headers=AUTH
    )
    assert resp.status_code == 400
    assert set(resp.json()) == {"error"}
    assert rawsync.get(key) == b"2"
    assert _clients_in_multi(rawsync) == []


@pytest.mark.anyio
async def test_non_blocking_stream_read_is_allowed(b64_client: UpstashRedis) -> None:
    key = _key("stream")
    entry_id = await b64_client.execute(["XADD", key, "*", "f", "v"])
    result = await b64_client.execute(["XREAD", "COUNT", 1, "STREAMS", key, "0"])
    assert result == [[key, [[entry_id, ["f", "v"]]]]]


@pytest.mark.anyio
async def test_lua_scripts(client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("lua")
    script = "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), 7}"
    assert await client.eval(script, keys=[key], args=["x:{y}"]) == ["x:{y}", 7]
    assert rawsync.get(key) == b"x:{y}"

    sha = await client.script_load("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert isinstance(sha, str) and len(sha) == 40
    assert await client.evalsha(sha, keys=[key + "n"], args=["5"]) == 5
    assert await client.evalsha(sha, keys=[key + "n"], args=["5"]) == 10
    assert await client.script_exists(sha, "0" * 40) == [True, False]

    # Status replies and nil inside Lua tables survive the base64 round trip.
    nested = "return {redis.status_reply('FINE'), redis.call('PING'), false, {1, 'a'}}"
    assert await client.eval(nested) == ["FINE", "PONG", None, [1, "a"]]
    assert await client.eval("return redis.call('TYPE', KEYS[1])", keys=[key]) == "string"

    with pytest.raises(UpstashError, match="boom"):
        await client.eval("return redis.error_reply('boom')")
    with pytest.raises(UpstashError, match="NOSCRIPT"):
        await client.evalsha("0" * 40)
    with pytest.raises(UpstashError):
        await client.eval("this is not lua")


@pytest.mark.anyio
async def test_client_quirks(b64_client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("quirk")
    # SET NX that does nothing gives False (redis-py gives None).
    assert await b64_client.set(key, "a", nx=True) is True
    assert await b64_client.set(key, "b", nx=True) is False
    assert rawsync.get(key) == b"a"
    # A falsy field value is dropped by the client, so redis sees an arity error.
    with pytest.raises(UpstashError, match="wrong number of arguments"):
        await b64_client.hset(key + "h", "z", 0)
    assert await b64_client.hset(key + "h", values={"z": 0}) == 1
    assert rawsync.hget(key + "h", "z") == b"0"
    # Raw lowercase commands skip the client's result formatting.
    assert await b64_client.execute(["hgetall", key + "h"]) == ["z", "0"]
    assert await b64_client.execute(["set", key, "c"]) == "OK"
    # Arguments the client cannot send at all.
    with pytest.raises(TypeError):
        await b64_client.set(key, b"bytes")
    with pytest.raises(ValueError):
        await b64_client.set(key, float("inf"))
    assert await b64_client.zadd(key + "z", scores={"m": "+inf"}) == 1
    assert await b64_client.zscore(key + "z", "m") == float("inf")


@pytest.mark.anyio
async def test_concurrent_requests(b64_client: UpstashRedis, rawsync: redis.Redis) -> None:
    key = _key("conc")

    async def bump() -> None:
        await b64_client.incr(key)

    async with anyio.create_task_group() as tg:
        for _ in range(60):
            tg.start_soon(bump)
    assert rawsync.get(key) == b"60"


@pytest.mark.anyio
async def test_wrong_and_missing_token(rest: UpstashRestServer, http: httpx.AsyncClient) -> None:
    wrong = "wrong-" + TOKEN
    bad = _client(rest, token=wrong)
    try:
        with pytest.raises(UpstashError) as info:
            await bad.get("k")
    finally:
        await bad.close()
    message = str(info.value)
    assert message == "Unauthorized"
    assert TOKEN not in message and wrong not in message and TOKEN not in repr(info.value)

    for headers in (
        {},
        {"Authorization": wrong},
        {"Authorization": f"Bearer {wrong}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ):
        for path in ("/", "/pipeline", "/multi-exec"):
            resp = await http.post(rest.url + path, json=[["PING"]], headers=headers)
            assert resp.status_code == 401, (headers, path)
            assert resp.json() == {"error": "Unauthorized"}
            assert TOKEN not in resp.text
    ok = await http.post(rest.url, json=["PING"], headers={"authorization": f"bearer {TOKEN}"})
    assert ok.json() == {"result": "PONG"}


@pytest.mark.anyio
async def test_methods_and_paths(rest: UpstashRestServer, http: httpx.AsyncClient) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"):
        resp = await http.request(method, rest.url + "/pipeline", headers=AUTH)
        assert resp.status_code == 405, method
        assert resp.json() == {"error": "Method Not Allowed"}
        assert resp.headers["allow"] == "POST"
    head = await http.head(rest.url, headers=AUTH)
    assert head.status_code == 405 and head.content == b""

    for path in ("/nope", "/set/foo/bar", "/pipeline/x", "/multi", "/monitor", "/subscribe"):
        resp = await http.post(rest.url + path, json=["PING"], headers=AUTH)
        assert resp.status_code == 404, path
        assert resp.json() == {"error": "Not Found"}

    for path, body, expected in (
        ("//pipeline", [["PING"]], [{"result": "PONG"}]),
        ("///multi-exec", [["PING"]], [{"result": "PONG"}]),
        ("/pipeline/", [["PING"]], [{"result": "PONG"}]),
        ("//", ["PING"], {"result": "PONG"}),
        ("/?foo=bar", ["PING"], {"result": "PONG"}),
    ):
        resp = await http.post(rest.url + path, json=body, headers=AUTH)
        assert resp.status_code == 200, path
        assert resp.json() == expected


@pytest.mark.anyio
async def test_trailing_slash_url(rest: UpstashRestServer, rawsync: redis.Redis) -> None:
    key = _key("slash")
    c = UpstashRedis(url=rest.url + "/", token=TOKEN, rest_retries=0, allow_telemetry=False)
    try:
        assert await c.set(key, "1") is True
        p = c.pipeline()
        p.incr(key).get(key)
        assert await p.exec() == [2, "2"]  # sent to //pipeline
        m = c.multi()
        m.incr(key)
        assert await m.exec() == [3]  # sent to //multi-exec
    finally:
        await c.close()
    assert rawsync.get(key) == b"3"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", b"not json"),
        ("/", b""),
        ("/", b'["SET", "k"'),
        ("/", b"{}"),
        ("/", b"[]"),
        ("/", b'"PING"'),
        ("/", b"42"),
        ("/pipeline", b"{}"),
        ("/pipeline", b'["PING"]'),
        ("/pipeline", b"[[]]"),
        ("/pipeline", b'[["PING"], 5]'),
        ("/multi-exec", b'["PING"]'),
        ("/multi-exec", b"null"),
    ],
)
async def test_bad_bodies(rest: UpstashRestServer, http: httpx.AsyncClient, path: str, body: bytes) -> None:
    resp = await http.post(rest.url + path, content=body, headers=AUTH)
    assert resp.status_code == 400
    payload = resp.json()
    assert set(payload) == {"error"} and payload["error"]
    # Keep-alive connection still usable after a bad request.
    assert (await http.post(rest.url, json=["PING"], headers=AUTH)).json() == {"result": "PONG"}


def test_keep_alive_and_framing(rest: UpstashRestServer) -> None:
    def request(body: bytes, extra: bytes = b"") -> bytes:
        return (
            b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\n"
            + extra
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    with socket.create_connection(("127.0.0.1", rest.port), timeout=5) as sock:
        sock.sendall(request(b'["ECHO","one"]') + request(b'["ECHO","two"]'))
        data = b""
        while data.count(b"}") < 2:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert b'{"result":"one"}' in data and b'{"result":"two"}' in data
    assert b"Content-Length: 16" in data
    assert b"Connection: close" not in data

    with socket.create_connection(("127.0.0.1", rest.port), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 411")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]


@pytest.mark.anyio
async def test_nothing_is_logged(
    rest: UpstashRestServer,
    http: httpx.AsyncClient,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await http.post(rest.url, json=["SET", "log", TOKEN], headers=AUTH)
    await http.post(rest.url, json=["PING"], headers={"Authorization": "Bearer nope"})
    await http.get(rest.url + "/x", headers=AUTH)
    await http.post(rest.url + "/x", content=b"{", headers=AUTH)
    await http.request("BREW", rest.url, headers=AUTH)
    await http.post(rest.url, json=["NOSUCHCMD"], headers=AUTH)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert caplog.records == []


def test_lifecycle_and_repr(private_redis: EmbeddedRedis) -> None:
    baseline_threads = {t.ident for t in _our_threads()}
    server = UpstashRestServer(private_redis.url, TOKEN)
    assert TOKEN not in repr(server)
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.token == TOKEN
    server.start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
        assert TOKEN not in repr(server) and server.url in repr(server)
        with pytest.raises(RuntimeError):
            server.start()
        resp = httpx.post(server.url, json=["PING"], headers=AUTH)
        assert resp.json() == {"result": "PONG"}
    finally:
        server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url
    # A stopped server can be started again, on a fresh port when port=0.
    with server:
        assert httpx.post(server.url, json=["PING"], headers=AUTH).json() == {"result": "PONG"}
    assert [t for t in _our_threads() if t.ident not in baseline_threads] == []

    with pytest.raises(ValueError):
        UpstashRestServer(private_redis.url, "")
    with pytest.raises(ValueError):
        UpstashRestServer("http://127.0.0.1:6379", TOKEN)
    secret = UpstashRestServer("redis://:hunter2@127.0.0.1:1/0", TOKEN)
    assert "hunter2" not in repr(secret)


@pytest.mark.anyio
async def test_async_context_manager(private_redis: EmbeddedRedis) -> None:
    async with UpstashRestServer(private_redis.url, TOKEN) as server:
        c = _client(server)
        try:
            assert await c.echo("hi") == "hi"
        finally:
            await c.close()
    with pytest.raises(RuntimeError):
        _ = server.url


def _connected_clients(rawsync: redis.Redis) -> int:
    return int(rawsync.info("clients")["connected_clients"])


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@pytest.mark.anyio
async def test_stop_releases_threads_and_sockets(private_redis: EmbeddedRedis, rawsync: redis.Redis) -> None:
    rawsync.ping()
    baseline_threads = {t.ident for t in _our_threads()}
    baseline_clients = _connected_clients(rawsync)
    server = UpstashRestServer(private_redis.url, TOKEN)
    server.start()
    c = _client(server)
    try:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(c.set, f"leak:{i}", str(i))
        assert _connected_clients(rawsync) > baseline_clients
        assert len(_our_threads()) > len(baseline_threads)
        # The client keeps its keep-alive connections open while the server stops.
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        new_threads = [t for t in _our_threads() if t.ident not in baseline_threads]
        assert new_threads == []
        assert _wait_for(lambda: _connected_clients(rawsync) == baseline_clients)
        with pytest.raises(httpx.TransportError):
            await c.get("leak:1")
    finally:
        await c.close()
        server.stop()


@pytest.mark.anyio
async def test_redis_going_away_gives_json_error(anyio_backend: str) -> None:
    redis_proc = EmbeddedRedis().start()
    server = UpstashRestServer(redis_proc.url, TOKEN, socket_timeout=1.0)
    server.start()
    c = _client(server)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            assert await c.set("gone", "1") is True
            redis_proc.stop()
            started = time.monotonic()
            with pytest.raises(UpstashError, match="redis"):
                await c.get("gone")
            assert time.monotonic() - started < 3
            resp = await http.post(server.url, json=["GET", "gone"], headers=B64)
            assert resp.status_code == 500
            assert set(resp.json()) == {"error"}
            for path in ("/pipeline", "/multi-exec"):
                resp = await http.post(server.url + path, json=[["PING"]], headers=B64)
                assert resp.status_code == 500
                assert set(resp.json()) == {"error"}
            # Client quirk: a whole-batch error object crashes pipelines with AttributeError.
            with pytest.raises(AttributeError):
                await c.pipeline().ping().exec()
    finally:
        await c.close()
        server.stop()
        redis_proc.stop()


@pytest.mark.anyio
async def test_unresponsive_redis_times_out_then_recovers(anyio_backend: str) -> None:
    with EmbeddedRedis() as redis_proc:
        server = UpstashRestServer(redis_proc.url, TOKEN, socket_timeout=0.5)
        admin = redis.Redis.from_url(redis_proc.url)
        server.start()
        c = _client(server)
        try:
            assert await c.set("k", "v") is True
            admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            started = time.monotonic()
            with pytest.raises(UpstashError, match="timed out"):
                await c.get("k")
            assert time.monotonic() - started < 1.4
            admin.execute_command("CLIENT", "UNPAUSE")
            assert await c.get("k") == "v"
        finally:
            await c.close()
            server.stop()
            admin.close()


@pytest.mark.anyio
async def test_redis_auth_and_database_from_url(anyio_backend: str) -> None:
    password = "redis-pass-xyz"
    # EmbeddedRedis waits for an unauthenticated PING, so the password is set afterwards.
    with EmbeddedRedis() as redis_proc:
        with redis.Redis(port=redis_proc.port) as setup:
            setup.config_set("requirepass", password)
        admin = redis.Redis(port=redis_proc.port, password=password, db=3)
        good = f"redis://:{password}@127.0.0.1:{redis_proc.port}/3"
        bad = f"redis://:wrong@127.0.0.1:{redis_proc.port}/0"
        try:
            async with UpstashRestServer(good, TOKEN) as server:
                assert password not in repr(server)
                c = _client(server)
                try:
                    assert await c.set("in-db-3", "yes") is True
                    assert await c.get("in-db-3") == "yes"
                finally:
                    await c.close()
            assert admin.get("in-db-3") == b"yes"
            async with (
                UpstashRestServer(bad, TOKEN) as server,
                httpx.AsyncClient(timeout=10) as http,
            ):
                resp = await http.post(server.url, json=["PING"], headers=AUTH)
                assert resp.status_code == 500
                assert "wrong" not in resp.json()["error"]
                assert password not in resp.json()["error"]
        finally:
            admin.close()
