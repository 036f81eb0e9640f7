"""Index damage and its repair: keys deleted by hand, eviction, an index added to existing data,
and a server at its memory limit."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from redis_orm_async import (
    BackendError,
    EvictionPolicyWarning,
    Field,
    Model,
    Orm,
    Schema,
    create_orm,
)
from redis_orm_async.testing import EmbeddedRedis

MakeOrm = Callable[..., Orm]


class Member(Model, key_prefix="mem", unique_together=[("org", "seat")]):
    email: str = Field(unique=True)
    org: str = Field(index=True)
    seat: int = Field(index=True)
    name: str = Field("", lex=True)


SCHEMA = Schema([Member])


async def seeded(orm: Orm, count: int = 30) -> list[Member]:
    members = orm.repo(Member)
    made = await members.create_many(
        [{"email": f"m{n}@x.io", "org": f"o{n % 3}", "seat": n, "name": f"n{n}"} for n in range(count)]
    )
    for member in made[:5]:
        await members.touch(where={"id": member.id}, ttl=timedelta(minutes=5))
    return made


async def test_repair_rebuilds_what_was_deleted_by_hand_and_removes_what_was_made_up(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    members = orm.repo(Member)
    made = await seeded(orm)
    keys = orm.schema.meta(Member).keys
    await raw.delete(
        keys.equality("org", "o1"), keys.range("seat"), keys.states(), keys.expiry(), keys.lex("name")
    )
    await raw.delete(keys.unique("email", ["m3@x.io"]), keys.unique("org+seat", ["o0", "0"]))
    await raw.zadd(keys.equality("org", "o2"), {made[0].id: 0, "01GHOST00000000000000000000": 0})
    await raw.set(keys.unique("email", ["ghost@x.io"]), made[1].id)
    await raw.set(keys.unique("email", ["nobody@x.io"]), "01GHOST00000000000000000000")
    before = await orm.audit(Member)
    assert not before.ok
    report = await orm.repair(Member)
    assert report.records == 30 and report.removed >= 4 and report.conflicts == []
    after = await orm.audit(Member)
    assert after.ok, str(after)
    assert {m.id for m in await members.find_many(where={"org": "o1"})} == {
        m.id for m in made if m.org == "o1"
    }
    assert [
        m.seat for m in await members.find_many(where={"seat": {"gte": 27}}, order_by={"seat": "asc"})
    ] == [27, 28, 29]
    again = await members.update(where={"email": "m3@x.io"}, data={"org": "o9"})
    assert again is not None and again.org == "o9"
    assert (await orm.audit(Member)).ok


async def test_repair_backfills_an_index_added_to_existing_records(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    class Plain(Model, key_prefix="pl"):
        id: str
        color: str
        size: int = 0

    class Indexed(Model, key_prefix="pl"):
        id: str
        color: str = Field(index=True)
        size: int = Field(0, index=True)

    old = make_orm(Schema([Plain]))
    await old.repo(Plain).create_many(
        [{"id": f"p{n}", "color": "red" if n % 2 else "blue", "size": n} for n in range(20)]
    )
    new = make_orm(Schema([Indexed]))
    assert not (await new.audit(Indexed)).ok
    await new.repair(Indexed)
    assert (await new.audit(Indexed)).ok
    reds = await new.repo(Indexed).find_many(where={"color": "red", "size": {"lt": 10}})
    assert [r.id for r in reds] == ["p1", "p3", "p5", "p7", "p9"]


async def test_repair_reports_two_live_records_holding_one_unique_value(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    made = await seeded(orm, 4)
    key = orm.schema.meta(Member).keys.record(made[2].id)
    await raw.hset(key, "email", "m1@x.io")  # another tool wrote a duplicate behind the ORM's back
    report = await orm.repair(Member)
    assert report.conflicts == [("email", made[2].id)] or report.conflicts == [("email", made[1].id)]


async def test_an_evicting_server_is_named_when_the_orm_connects() -> None:
    with EmbeddedRedis(args=["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]) as server:
        client = aioredis.Redis.from_url(server.url)
        with pytest.warns(EvictionPolicyWarning, match="allkeys-lru"):
            orm = await create_orm(SCHEMA, client).connect()
        assert orm.backend.features.maxmemory_policy == "allkeys-lru"
        refusing = create_orm(SCHEMA, client, eviction="refuse")
        for _ in range(2):
            with pytest.raises(BackendError, match="maxmemory-policy"):
                await refusing.repo(Member).create(data={"email": "a@x.io", "org": "o", "seat": 1})
        assert await client.dbsize() == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            allowed = create_orm(SCHEMA, client, eviction="allow")
            await allowed.repo(Member).create(data={"email": "a@x.io", "org": "o", "seat": 1})
        await client.aclose()


async def test_after_a_real_eviction_repair_makes_every_query_right_again() -> None:
    with EmbeddedRedis(args=["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]) as server:
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        orm = create_orm(SCHEMA, client, eviction="allow")
        members = orm.repo(Member)
        seat = 0
        while int((await client.info("stats"))["evicted_keys"]) < 50:
            batch = [
                {"email": f"e{seat + n}@x.io", "org": f"o{n % 4}", "seat": seat + n, "name": "x" * 200}
                for n in range(200)
            ]
            await members.create_many(batch)
            seat += 200
        await client.config_set("maxmemory", "0")
        assert not (await orm.audit(Member)).ok
        report = await orm.repair(Member)
        assert report.conflicts == []
        assert (await orm.audit(Member)).ok
        alive = await members.find_many()
        assert await members.count() == len(alive) > 0
        for org in ("o0", "o3"):
            assert await members.count(where={"org": org}) == sum(m.org == org for m in alive)
        await client.aclose()


async def test_at_maxmemory_with_noeviction_a_write_fails_whole_and_reads_go_on() -> None:
    with EmbeddedRedis(args=["--maxmemory-policy", "noeviction"]) as server:
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        orm = create_orm(SCHEMA, client)
        members = orm.repo(Member)
        await seeded(orm, 10)
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory", str(used // 2))  # over the limit, whatever the allocator does
        with pytest.raises(aioredis.RedisError, match="maxmemory"):
            await client.set("filler", "x")
        with pytest.raises(BackendError, match="maxmemory limit") as caught:
            await members.create(data={"email": "late@x.io", "org": "o1", "seat": 99})
        assert not caught.value.retryable
        assert await members.find_unique(where={"email": "late@x.io"}) is None
        assert await members.count() == 10
        assert len(await members.find_many(where={"org": "o1"})) == 3
        assert (await orm.audit(Member)).ok
        await client.aclose()
