"""Servers that refuse scripts: writes keep the same semantics through WATCH/MULTI/EXEC.

The write script and its Python twin (``_engine/overlay.py``) are run on the same random
sequences of operations, and must leave the same keys and give the same answers; a real server
whose ACL refuses ``@scripting`` makes the ORM switch to the twin by itself.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_orm_async import Field, Model, Orm, OrmError, Schema, UniqueConstraintError, create_orm
from redis_orm_async.testing import EmbeddedRedis

MakeOrm = Callable[..., Orm]
WATCH_ONLY = pytest.mark.parametrize("backend_name", ["redis", "redis-cluster"], indirect=True)


class Note(Model, key_prefix="note", unique_together=[("owner", "slot")]):
    id: str
    color: str = Field(index=True)
    email: str | None = Field(None, unique=True)
    hits: int = Field(0, index=True)
    owner: str = "o"
    slot: int | None = None
    title: str | None = Field(None, lex=True)


class Badge(Model, key_prefix="fbadge"):
    """Generated ids: ``create_many`` sends them as one bulk create, which needs scripts."""

    code: str = Field(unique=True)
    team: str = Field(index=True)
    seat: int = Field(0, index=True)
    nick: str | None = Field(None, lex=True)


IDS = st.sampled_from(["a", "b", "c"])
EMAILS = st.sampled_from(["x@x.io", "y@x.io", None])
COLORS = st.sampled_from(["red", "blue"])
DATA = st.fixed_dictionaries(
    {"color": COLORS},
    optional={
        "email": EMAILS,
        "hits": st.integers(-3, 3),
        "slot": st.none() | st.integers(0, 2),
        "title": st.text("ab:", max_size=3),
    },
)
CHANGES = st.one_of(
    st.fixed_dictionaries({"color": COLORS}),
    st.fixed_dictionaries({"email": EMAILS}),
    st.fixed_dictionaries({"hits": st.integers(-5, 5).map(lambda n: {"increment": n})}),
    st.fixed_dictionaries(
        {"slot": st.none() | st.integers(0, 2), "title": st.none() | st.text("ab", max_size=2)}
    ),
)
LOCATORS = IDS.map(lambda i: {"id": i}) | st.sampled_from(["x@x.io", "y@x.io"]).map(lambda e: {"email": e})
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), IDS, DATA),
        st.tuples(st.just("update"), LOCATORS, CHANGES),
        st.tuples(st.just("upsert"), IDS, DATA),
        st.tuples(st.just("delete"), LOCATORS),
        st.tuples(st.just("vanish"), IDS),
        st.tuples(st.just("sweep")),
        st.tuples(st.just("pair"), IDS, DATA, LOCATORS),
    ),
    min_size=1,
    max_size=12,
)


async def apply(orm: Orm, op: tuple[Any, ...], raw: Any) -> Any:
    notes = orm.repo(Note)
    kind = op[0]
    if kind == "create":
        return await notes.create(data={"id": op[1], **op[2]})
    if kind == "update":
        return await notes.update(where=op[1], data=op[2])
    if kind == "upsert":
        return await notes.upsert(where={"id": op[1]}, create=op[2], update={"hits": {"increment": 1}})
    if kind == "delete":
        return await notes.delete(where=op[1])
    if kind == "vanish":  # the record is gone as if it expired or was evicted: its leftovers stay
        return await raw.delete(orm.schema.meta(Note).keys.record(op[1]))
    if kind == "sweep":
        return await orm.sweep(Note)
    async with orm.transaction() as tx:
        tx.repo(Note).create(data={"id": op[1], **op[2]})
        pending = tx.repo(Note).delete(where=op[3])
    return pending.value


async def outcome(orm: Orm, op: tuple[Any, ...], raw: Any) -> Any:
    try:
        return ("ok", await apply(orm, op, raw))
    except OrmError as exc:
        return ("error", type(exc).__name__, exc.code)


async def snapshot(raw: Any, namespace: str) -> dict[str, Any]:
    """Every key of a namespace: its content (expiry scores and TTL lengths left out, since the
    two ORMs write a few milliseconds apart) and whether it expires. Of the built-indexes marker
    (``:ix``, see ``_engine/built.py``) only the index names count, and only while the model has
    records: the script drops it with the model's last record, the twin leaves it (harmless: the
    next first record marks the same names and any new ones)."""
    found: dict[str, Any] = {}
    markers: dict[str, Any] = {}
    async for key in raw.scan_iter(match=f"{namespace}:*"):
        if key.endswith(":ix"):
            markers[key.split(":", 1)[1]] = sorted(await raw.hkeys(key))
            continue
        kind = await raw.type(key)
        if kind == "string":
            value: Any = await raw.get(key)
        elif kind == "hash":
            value = await raw.hgetall(key)
        else:
            pairs = await raw.zrange(key, 0, -1, withscores=True)
            value = [m for m, _ in pairs] if key.endswith(":exp") else pairs
        found[key.split(":", 1)[1]] = (kind, value, await raw.pttl(key) > 0)
    for key, names in markers.items():
        if key.removesuffix(":ix") + ":ids" in found:
            found[key] = names
    return found


@WATCH_ONLY
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
async def test_the_script_and_its_python_twin_leave_the_same_keys(
    make_orm: MakeOrm, raw: aioredis.Redis, ops: list[tuple[Any, ...]]
) -> None:
    scripted = make_orm(Schema([Note], namespace="s"))
    watched = make_orm(Schema([Note], namespace="w"))
    watched.backend.features = dataclasses.replace(watched.backend.features, scripting=False)
    for op in ops:
        assert await outcome(scripted, op, raw) == await outcome(watched, op, raw), op
    assert await snapshot(raw, "s") == await snapshot(raw, "w")
    for orm in (scripted, watched):
        report = await orm.audit(Note)
        assert all(p.kind == "dangling" for p in report.problems), str(report)  # leftovers of vanished
        await orm.repair(Note)
        assert (await orm.audit(Note)).ok
    assert watched.capabilities.optimistic_guard == "watch"
    await raw.flushdb()


@pytest.fixture(scope="module")
async def acl_server() -> AsyncIterator[tuple[EmbeddedRedis, str]]:
    """A private server with a user that may do anything but run scripts."""
    password = secrets.token_urlsafe(12)
    with EmbeddedRedis() as server:
        admin = aioredis.Redis.from_url(server.url, decode_responses=True)
        await admin.execute_command(
            "ACL", "SETUSER", "app", "on", f">{password}", "~*", "&*", "+@all", "-@scripting"
        )
        await admin.aclose()
        yield server, password


@pytest.fixture
async def scriptless_orm(acl_server: tuple[EmbeddedRedis, str]) -> AsyncIterator[Orm]:
    """An ORM on that server, as the user that may not run scripts; nothing has told it so."""
    server, password = acl_server
    client = aioredis.Redis(host="127.0.0.1", port=server.port, username="app", password=password)
    yield create_orm(Schema([Note, Badge]), client)
    await client.aclose()


async def test_a_server_that_refuses_scripts_gets_the_same_writes_through_watch(scriptless_orm: Orm) -> None:
    orm = scriptless_orm
    notes = orm.repo(Note)
    await notes.create(data={"id": "a", "color": "red", "email": "x@x.io"})
    assert orm.capabilities.optimistic_guard == "watch" and not orm.capabilities.supports_scripting
    await notes.create_many([{"id": "b", "color": "blue"}, {"id": "c", "color": "blue", "slot": 1}])
    assert (await notes.update(where={"email": "x@x.io"}, data={"hits": {"increment": 2}})).hits == 2  # type: ignore[union-attr]
    await notes.upsert(where={"id": "d"}, create={"color": "red"}, update={"hits": {"increment": 1}})
    async with orm.transaction() as tx:
        tx.repo(Note).delete(where={"id": "b"})
        tx.repo(Note).update(where={"id": "c"}, data={"email": "y@x.io"})
    assert await notes.delete(where={"email": "y@x.io"}) is not None
    winners: list[str] = []

    async def claim(n: int) -> None:
        try:
            await notes.create(data={"id": f"r{n}", "color": "red", "email": "race@x.io"})
            winners.append(f"r{n}")
        except UniqueConstraintError:
            pass

    async with anyio.create_task_group() as group:
        for n in range(40):
            group.start_soon(claim, n)
    assert len(winners) == 1
    assert (await orm.audit(Note)).ok


async def test_create_many_of_generated_ids_on_a_server_that_refuses_scripts(scriptless_orm: Orm) -> None:
    """The first chunk finds out that scripts are refused and is written through WATCH, as is every
    later one; a chunk that takes a held unique value writes nothing."""
    badges = scriptless_orm.repo(Badge)
    made = await badges.create_many(
        [
            {
                "code": f"c{n}",
                "team": "red" if n % 2 else "blue",
                "seat": n,
                "nick": None if n % 3 else f"n{n}",
            }
            for n in range(7)
        ]
    )
    assert not scriptless_orm.capabilities.supports_scripting
    more = await badges.create_many([{"code": "d1", "team": "red"}, {"code": "d2", "team": "red"}])
    with pytest.raises(UniqueConstraintError):
        await badges.create_many([{"code": "d3", "team": "red"}, {"code": "c4", "team": "red"}])
    assert await badges.count() == 9
    assert await badges.count(where={"team": "red"}) == 5
    assert [b.code for b in await badges.find_many(where={"seat": {"gte": 5}}, order_by={"seat": "asc"})] == [
        "c5",
        "c6",
    ]
    for record in [*made, *more]:
        assert await badges.find_unique({"code": record.code}) == record
    assert (await scriptless_orm.audit(Badge)).ok


async def test_a_rate_limiter_on_a_server_that_refuses_scripts_counts_exactly_through_watch(
    scriptless_orm: Orm,
) -> None:
    """The limiter's first call finds out that scripts are refused; every call is still counted once."""
    orm = scriptless_orm
    limiter = orm.rate_limiter("5/minute", name="acl")
    answers: list[bool] = []

    async def call() -> None:
        answers.append((await limiter.hit("ada")).allowed)

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(call)
    assert sorted(answers) == [False] * 7 + [True] * 5
    assert not orm.capabilities.supports_scripting
    assert (await limiter.hit("ada")).hits == 13
