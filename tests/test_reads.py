"""Reads never write, on every backend and on servers that refuse writes or scripts.

Every read method runs against a read-only replica, against a server at ``maxmemory`` with
``noeviction``, and with plain commands only (no scripting), and answers as on a healthy primary.
No read creates a key; a page's server commands do not grow with the expired backlog elsewhere
in the model; a unique lookup is one round trip and never answers from a stale claim.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ClassVar

import anyio
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings

from redis_orm_async import (
    BackendError,
    BelongsTo,
    Field,
    HasMany,
    Model,
    NotFoundError,
    Orm,
    Schema,
    belongs_to,
    create_orm,
    has_many,
)
from redis_orm_async._engine.reads import UNIQUE_SCRIPT
from redis_orm_async._model.keys import escape
from redis_orm_async.testing import EmbeddedRedis

from .strategies import ODD_TEXT

MakeOrm = Callable[..., Orm]


class Team(Model, key_prefix="rteam"):
    name: str = Field(index=True)
    members: ClassVar[HasMany[Member]] = has_many("Member", foreign_key="team_id")


class Member(Model, key_prefix="rmember"):
    email: str = Field(unique=True)
    handle: str = Field(lex=True)
    status: str = Field("active", index=True)
    age: int | None = Field(None, index=True)
    team_id: str | None = None
    note: str = ""
    team: ClassVar[BelongsTo[Team]] = belongs_to(Team, foreign_key="team_id")


SCHEMA = Schema([Team, Member])
STATUSES = ["active", "active", "active", "idle", "active", "banned"]


async def seed(orm: Orm, *, expired: int = 4) -> dict[str, Any]:
    """60 live members in 3 teams (a few with a long ttl), plus ``expired`` that expire at once."""
    teams = await orm.repo(Team).create_many([{"name": n} for n in ("red", "blue", "green")])
    members = orm.repo(Member)
    rows = [
        {"email": f"m{i}@x.io", "handle": f"h{i}", "status": STATUSES[i % 6],
         "age": None if i % 7 == 0 else 18 + (i * 7) % 50, "team_id": teams[i % 3].id,
         "note": "x" if i % 5 == 0 else ""}
        for i in range(60)
    ]  # fmt: skip
    live = await members.create_many(rows[:55])
    live += await members.create_many(rows[55:], ttl=timedelta(hours=1))
    if expired:
        doomed = [{**row, "email": f"d{i}@x.io"} for i, row in enumerate(rows[:expired])]
        await members.create_many(doomed, ttl=timedelta(milliseconds=20))
        await anyio.sleep(0.06)
    return {"teams": teams, "members": live}


async def exercise(orm: Orm, seeded: dict[str, Any]) -> dict[str, Any]:
    """Every read method, with every strategy; results as plain data to compare."""
    members, teams = orm.repo(Member), orm.repo(Team)
    someone = seeded["members"][8]

    async def ids(**query: Any) -> list[str]:
        return [m.id for m in await members.find_many(**query)]

    plans = {
        "page by id": {"where": {"status": "active"}, "take": 5},
        "page by id, deep": {"order_by": {"id": "desc"}, "take": 4, "skip": 7},
        "page by age window": {
            "where": {"age": {"gte": 20, "lt": 40}},
            "order_by": {"age": "asc"},
            "take": 5,
        },
        "page with nulls": {"order_by": {"age": "desc"}, "take": 12},
        "page, few candidates": {"where": {"status": "banned"}, "order_by": {"age": "asc"}, "take": 3},
        "page of an OR": {"where": {"OR": [{"status": "banned"}, {"age": {"gt": 60}}]}, "take": 5},
        "page of a prefix": {"where": {"handle": {"startswith": "h1"}}, "take": 5},
        "page after a cursor": {"order_by": {"age": "asc"}, "take": 3, "cursor": someone.id},
        "candidates": {"where": {"status": "active", "note": {"contains": "x"}}},
        "scan": {"where": {"note": "x"}, "take": 3},
        "select": {"where": {"status": "idle"}, "select": {"email": True}, "take": 2},
    }
    out: dict[str, Any] = {}
    for name, query in plans.items():
        out[name] = await ids(**query)
        out[name + " plan"] = members.explain(**{k: v for k, v in query.items() if k != "select"}).strategy
    first = await members.find_first(where={"status": "active"}, order_by={"age": "desc"})
    out["first"] = first.id if first else None
    out["unique by id"] = await members.find_unique({"id": someone.id}) == someone
    out["unique by email"] = await members.find_unique({"email": someone.email}) == someone
    out["unique by a free email"] = await members.find_unique({"email": "nobody@x.io"})
    out["unique or raise"] = (await members.find_unique_or_raise({"email": someone.email})).id
    out["exists"] = [await members.exists({"email": someone.email}), await members.exists({"id": someone.id}),
                     await members.exists({"email": "d0@x.io"})]  # fmt: skip
    out["ttl"] = [await members.ttl({"email": someone.email}), bool(await members.ttl({"email": "m57@x.io"}))]
    out["count"] = [
        await members.count(),
        await members.count(where={"status": "active"}),
        await members.count(where={"status": "active", "age": {"gt": 30}}),
        await members.count(where={"note": {"contains": "x"}}),
        await members.count(where={"handle": {"startswith": "h2"}}),
    ]
    loaded = await teams.find_many(include={"members": {"order_by": {"age": "asc"}, "take": 3}})
    out["relations"] = sorted((t.name, [m.id for m in t.members]) for t in loaded)
    back = await members.find_many(where={"status": "idle"}, include={"team": True}, take=3)
    out["belongs to"] = [(m.id, m.team.name if m.team else None) for m in back]
    return out


def expected(seeded: dict[str, Any]) -> dict[str, Any]:
    """What a few of the reads must answer, computed from the created records in Python."""
    live: list[Member] = seeded["members"]
    active = sorted(m.id for m in live if m.status == "active")
    return {
        "page by id": active[:5],
        "count": [len(live), len(active)],
        "unique by a free email": None,
        "exists": [True, True, False],
    }


def check_against_python(found: dict[str, Any], seeded: dict[str, Any]) -> None:
    want = expected(seeded)
    assert found["page by id"] == want["page by id"]
    assert found["count"][:2] == want["count"]
    assert found["unique by a free email"] is None and found["exists"] == want["exists"]
    assert found["unique by id"] and found["unique by email"]
    assert found["page by id plan"] == "page" and found["candidates plan"] == "candidates"
    assert found["scan plan"] == "scan"


async def test_no_read_creates_a_key_or_calls_a_write_command(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    seeded = await seed(orm, expired=0)
    before = sorted(await raw.keys("*"))
    stats = await _CommandCounter.for_orm(orm, raw)
    async with stats:
        found = await exercise(orm, seeded)
    check_against_python(found, seeded)
    assert sorted(await raw.keys("*")) == before, "a read created or removed a key"
    writes = {name for name in stats.delta if name in _WRITE_COMMANDS}
    assert not writes, writes


async def test_expired_records_are_skipped_and_handed_to_the_lazy_cleanup(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    seeded = await seed(orm, expired=4)
    before = set(await raw.keys("*"))
    found = await exercise(orm, seeded)
    check_against_python(found, seeded)
    assert set(await raw.keys("*")) <= before, "cleanup only removes"
    assert (await orm.audit(Member)).ok, "the reads that met the expired records cleaned them up"


async def test_reads_without_scripting_answer_like_the_script(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    seeded = await seed(orm)
    scripted = await exercise(orm, seeded)
    plain = make_orm(SCHEMA)
    plain.backend.features = dataclasses.replace(plain.backend.features, scripting=False)
    stats = await _CommandCounter.for_orm(plain, raw)
    async with stats:
        assert await exercise(plain, seeded) == scripted
    assert not {"cmdstat_evalsha", "cmdstat_eval"} & set(stats.delta)
    check_against_python(scripted, seeded)


async def test_a_server_that_refuses_scripts_still_answers_every_read(
    redis_server: EmbeddedRedis, raw: aioredis.Redis
) -> None:
    """A real ACL user without @scripting: the first refused script turns the ORM's scripting
    off, and reads (the very first one included) answer with plain commands."""
    name, password = f"reader{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    await raw.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"],
                          channels=["*"], categories=["+@all", "-@scripting"])  # fmt: skip
    owner_client = aioredis.Redis.from_url(redis_server.url)
    owner = create_orm(SCHEMA, owner_client)
    limited_client = aioredis.Redis.from_url(redis_server.url, username=name, password=password)
    limited = create_orm(SCHEMA, limited_client)
    try:
        seeded = await seed(owner)
        scripted = await exercise(owner, seeded)
        with pytest.raises(Exception, match=r"NOPERM|permission"):
            await limited_client.execute_command("SCRIPT", "EXISTS", UNIQUE_SCRIPT.sha)
        assert limited.capabilities.supports_scripting, "nothing refused yet"
        assert await exercise(limited, seeded) == scripted
        assert not limited.capabilities.supports_scripting
    finally:
        await owner_client.aclose()
        await limited_client.aclose()
        await raw.acl_deluser(name)


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    with EmbeddedRedis() as primary, EmbeddedRedis(replica_of=primary.port) as replica:
        yield primary, replica


async def _synced(primary: aioredis.Redis, replica: EmbeddedRedis) -> None:
    with anyio.fail_after(10):
        while not replica.synced():  # noqa: ASYNC110 - a server's state, polled: nothing to wait on
            await anyio.sleep(0.02)
        await primary.execute_command("WAIT", 1, 5000)


async def test_every_read_works_on_a_read_only_replica(
    replicated: tuple[EmbeddedRedis, EmbeddedRedis],
) -> None:
    primary_server, replica_server = replicated
    primary_client = aioredis.Redis.from_url(primary_server.url)
    replica_client = aioredis.Redis.from_url(replica_server.url)
    try:
        await primary_client.flushdb()
        primary = create_orm(SCHEMA, primary_client)
        replica = create_orm(SCHEMA, replica_client)
        seeded = await seed(primary)
        await _synced(primary_client, replica_server)
        with pytest.raises(Exception, match="read only"):
            await replica_client.set("probe", "1")
        on_replica = await exercise(replica, seeded)
        check_against_python(on_replica, seeded)
        assert on_replica == await exercise(primary, seeded)
        replica.backend.features = dataclasses.replace(replica.backend.features, scripting=False)
        assert await exercise(replica, seeded) == on_replica
    finally:
        await primary_client.aclose()
        await replica_client.aclose()


@pytest.fixture(scope="module")
def full_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]) as server:
        yield server


async def test_every_read_works_at_maxmemory_with_noeviction(full_server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(full_server.url)
    try:
        await client.flushdb()
        orm = create_orm(SCHEMA, client)
        seeded = await seed(orm)
        await client.execute_command("SCRIPT", "FLUSH")  # the reads must load their scripts at the limit
        for size in (16_384, 1024, 64):  # up to the limit, whatever the allocator rounds
            with pytest.raises(Exception, match="maxmemory"):
                for n in range(100_000):
                    await client.set(f"filler:{size}:{n}", "x" * size)
        with pytest.raises(BackendError, match=r"OOM|maxmemory"):
            await orm.repo(Member).create({"email": "late@x.io", "handle": "late"})
        found = await exercise(orm, seeded)
        check_against_python(found, seeded)
        orm.backend.features = dataclasses.replace(orm.backend.features, scripting=False)
        assert await exercise(orm, seeded) == found
    finally:
        await client.flushdb()
        await client.aclose()


async def test_a_pages_server_commands_do_not_grow_with_the_expired_backlog(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    """Thousands of expired, unswept records in other windows of the model: a page read issues
    exactly the commands it issued before they existed (a long-lived record keeps the expiry
    ZSET non-empty in both runs, so each run checks expiry the same way). A ``skip`` is jumped
    over by rank only while nothing at all is due, and walked otherwise: a constant more."""
    orm = make_orm(SCHEMA)
    members = orm.repo(Member)
    created = await members.create_many([{"email": f"m{i}@x.io", "handle": f"h{i}", "age": 20 + i % 30,
                                          "status": "active"} for i in range(80)])  # fmt: skip
    await members.create({"email": "long@x.io", "handle": "long", "age": 90}, ttl=timedelta(hours=1))
    pages: list[dict[str, Any]] = [
        {"where": {"status": "active"}, "take": 20},
        {"where": {"age": {"gte": 20, "lt": 40}}, "order_by": {"age": "asc"}, "take": 20},
        {"order_by": {"age": "asc"}, "take": 20},
        {"where": {"status": "active", "age": {"lt": 30}}, "order_by": {"age": "desc"}, "take": 10},
        {"where": {"age": {"gte": 20}}, "order_by": {"age": "asc"}, "take": 20, "cursor": created[3].id},
        {"where": {"age": {"gte": 20}}, "order_by": {"age": "asc"}, "take": 20, "skip": 5},
    ]
    counts: list[int] = [
        await members.count(where={"status": "active"}),
        await members.count(where={"age": {"lt": 30}, "status": "active"}),
    ]

    async def costs() -> list[tuple[int, list[str]]]:
        out = []
        for query in pages:
            stats = await _CommandCounter.for_orm(orm, raw)
            async with stats:
                found = [m.id for m in await members.find_many(**query)]
            out.append((stats.total, found))
        return out

    await costs()  # scripts loaded
    quiet = await costs()
    backlog = [{"email": f"gone{i}@x.io", "handle": f"g{i}", "age": 500 + i % 7, "status": "gone"}
               for i in range(3000)]  # fmt: skip
    await members.create_many(backlog, ttl=timedelta(milliseconds=30))
    await anyio.sleep(0.1)
    busy = await costs()
    assert busy[:-1] == quiet[:-1]
    (skipped, found), (quiet_skipped, quiet_found) = busy[-1], quiet[-1]
    assert found == quiet_found and skipped <= quiet_skipped + 2
    count_stats = await _CommandCounter.for_orm(orm, raw)
    async with count_stats:
        assert [
            await members.count(where={"status": "active"}),
            await members.count(where={"age": {"lt": 30}, "status": "active"}),
        ] == counts
    assert count_stats.total <= 2 * 12, "a count costs its candidates, never the backlog"


async def test_a_unique_lookup_is_one_round_trip_and_never_trusts_a_stale_claim(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    members = orm.repo(Member)
    ada = await members.create({"email": "ada@x.io", "handle": "ada"})
    bob = await members.create({"email": "bob@x.io", "handle": "bob"}, ttl=timedelta(hours=1))
    await members.find_unique({"email": "ada@x.io"})  # scripts loaded
    for where, found in (({"email": "ada@x.io"}, ada), ({"id": bob.id}, bob), ({"email": "no@x.io"}, None)):
        start = orm.backend.stats.round_trips
        assert await members.find_unique(where) == found
        assert await members.exists(where) is (found is not None)
        assert orm.backend.stats.round_trips - start == 2, where
    left = await members.ttl({"email": "bob@x.io"})
    assert left is not None and timedelta(minutes=59) < left <= timedelta(hours=1)
    claim = orm.schema.meta(Member).claim_key(orm.schema.meta(Member).uniques[0], {"email": "ada@x.io"}, "")
    assert claim is not None
    await raw.set(claim, bob.id)  # a claim that points at a record holding another email
    assert await members.find_unique({"email": "ada@x.io"}) is None
    assert not await members.exists({"email": "ada@x.io"})
    with pytest.raises(NotFoundError):
        await members.ttl({"email": "ada@x.io"})
    with pytest.raises(NotFoundError):
        await members.find_unique_or_raise({"email": "ada@x.io"})
    selected = await members.find_unique({"email": "bob@x.io"}, select={"handle": True})
    assert selected is not None and selected.model_dump() == {"id": bob.id, "handle": "bob"}


@settings(max_examples=40)
@given(record_id=ODD_TEXT)
async def test_the_unique_script_finds_the_record_key_of_any_id(raw: aioredis.Redis, record_id: str) -> None:
    """``keys.lua`` escapes an id exactly as ``_model.keys.escape`` does."""
    if not record_id or len(record_id) > 1024 or any(0xD800 <= ord(c) <= 0xDFFF for c in record_id):
        return
    meta = SCHEMA.meta(Member)
    head = meta.keys.record("")
    assert meta.keys.record(record_id) == head + escape(record_id)
    await raw.hset(meta.keys.record(record_id), mapping={"id": record_id, "email": "e"})
    await raw.set("{rmember}:u:probe", record_id)
    found = await raw.eval(UNIQUE_SCRIPT.source, 1, "{rmember}:u:probe", head, "all")
    assert found is not None and found[0] == record_id
    await raw.delete(meta.keys.record(record_id))


_WRITE_COMMANDS = {
    f"cmdstat_{name}"
    for name in (
        "set", "setex", "psetex", "del", "unlink", "expire", "pexpire", "pexpireat", "persist", "hset",
        "hdel", "hincrby", "zadd", "zrem", "zincrby", "zinterstore", "zunionstore", "zdiffstore",
        "zrangestore", "sadd", "srem", "sinterstore", "sunionstore", "sdiffstore", "rename", "copy",
        "incr", "incrby", "decr", "getdel", "getex", "lpush", "rpush", "restore",
    )
}  # fmt: skip


class _CommandCounter:
    """``INFO commandstats`` deltas on every server a backend talks to (INFO itself excluded)."""

    def __init__(self, clients: list[aioredis.Redis], owned: bool) -> None:
        self.clients = clients
        self.owned = owned
        self.before: dict[str, int] = {}
        self.delta: dict[str, int] = {}

    @classmethod
    async def for_orm(cls, orm: Orm, raw: Any) -> _CommandCounter:
        if orm.backend.features.cluster:
            nodes = raw.get_primaries()
            return cls([aioredis.Redis(host=n.host, port=n.port) for n in nodes], owned=True)
        return cls([raw], owned=False)

    async def _read(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for client in self.clients:
            for name, stat in (await client.info("commandstats")).items():
                total[name] = total.get(name, 0) + int(stat["calls"])
        return total

    async def __aenter__(self) -> _CommandCounter:
        self.before = await self._read()
        return self

    async def __aexit__(self, *exc: object) -> None:
        after = await self._read()
        self.delta = {k: v - self.before.get(k, 0) for k, v in after.items() if v != self.before.get(k, 0)}
        self.delta.pop("cmdstat_info", None)
        if self.owned:
            for client in self.clients:
                with contextlib.suppress(Exception):
                    await client.aclose()

    @property
    def total(self) -> int:
        return sum(self.delta.values())


async def test_empty_texts_in_a_lex_field_are_found(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    members = orm.repo(Member)
    empty = await members.create({"email": "e@x.io", "handle": ""})
    full = await members.create({"email": "f@x.io", "handle": "f"})
    assert [m.id for m in await members.find_many(where={"handle": ""})] == [empty.id]
    assert await members.count(where={"handle": ""}) == 1
    anything = await members.find_many(where={"handle": {"startswith": ""}})
    assert {m.id for m in anything} == {empty.id, full.id}
    assert await members.count(where={"handle": {"startswith": ""}}) == 2


async def test_skipping_into_a_tie_group_of_sorted_records_without_a_value(make_orm: MakeOrm) -> None:
    """Few candidates, so the script sorts them; ordered by two keys, the records without a value
    are one tie group, and a skip lands inside it."""
    orm = make_orm(SCHEMA)
    members = orm.repo(Member)
    rows = [{"email": f"t{i}@x.io", "handle": f"t{9 - i}", "status": "rare" if i < 6 else "active",
             "age": None if i % 2 else i} for i in range(40)]  # fmt: skip
    created = await members.create_many(rows)
    rare = [m for m in created if m.status == "rare"]
    order = [{"age": "desc"}, {"handle": "asc"}]
    ordered = sorted(rare, key=lambda m: m.handle)
    ordered = [m for m in ordered if m.age is None] + sorted(
        [m for m in ordered if m.age is not None], key=lambda m: -(m.age or 0)
    )
    for skip in range(len(rare)):
        found = await members.find_many(where={"status": "rare"}, order_by=order, take=2, skip=skip)
        assert [m.id for m in found] == [m.id for m in ordered[skip : skip + 2]], skip
