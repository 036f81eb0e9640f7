"""Expiring records with clean indexes, and exact counters: scenario tests with short TTLs."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import anyio
import pytest
import redis.asyncio as aioredis

from redis_orm_async import Field, Model, NotFoundError, Orm, Schema, UniqueConstraintError, ValidationError


class Token(Model, key_prefix="tok", ttl=timedelta(milliseconds=400)):
    code: str = Field(unique=True)
    owner: str = Field(index=True)
    score: int = Field(0, index=True)
    label: str = Field("", lex=True)


class Counter(Model, key_prefix="ctr"):
    id: str
    hits: int = Field(0, index=True)
    note: str | None = None


class Bounded(Model, key_prefix="bnd"):
    id: str
    hits: int = Field(0, ge=0, le=5)


SCHEMA = Schema([Token, Counter, Bounded])
MakeOrm = Callable[..., Orm]
SHORT = timedelta(milliseconds=150)


async def wait_past(ttl: timedelta) -> None:
    await anyio.sleep(ttl.total_seconds() + 0.1)


async def test_an_expired_record_is_gone_everywhere_and_its_unique_value_is_free(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    tokens = orm.repo(Token)
    token = await tokens.create(data={"code": "abc", "owner": "u1", "label": "x"}, ttl=SHORT)
    left = await tokens.ttl(where={"id": token.id})
    assert left is not None and timedelta(0) < left <= SHORT
    assert await tokens.count() == 1
    await wait_past(SHORT)
    assert await tokens.find_unique(where={"id": token.id}) is None
    assert await tokens.find_unique(where={"code": "abc"}) is None
    assert not await tokens.exists(where={"code": "abc"})
    assert await tokens.count() == 0, "count is exact before any sweep"
    again = await tokens.create(data={"code": "abc", "owner": "u2"})
    assert await tokens.find_unique(where={"code": "abc"}) == again
    with pytest.raises(NotFoundError):
        await tokens.ttl(where={"id": token.id})


async def test_sweep_removes_every_index_entry_of_expired_records(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    tokens = orm.repo(Token)
    for n in range(30):
        await tokens.create(
            data={"code": f"c{n}", "owner": f"u{n % 3}", "score": n, "label": f"l{n}"}, ttl=SHORT
        )
    keeper = await tokens.create(data={"code": "keep", "owner": "u0"}, ttl=timedelta(seconds=30))
    await wait_past(SHORT)
    assert await tokens.count() == 1
    before = await orm.audit(Token)
    assert not before.ok and {p.kind for p in before.problems} == {"dangling"}
    assert await orm.sweep(Token) == 30
    after = await orm.audit(Token)
    assert after.ok, str(after)
    assert after.records == 1 and await tokens.find_unique(where={"code": "keep"}) == keeper
    start = orm.backend.stats.snapshot()
    assert await orm.sweep(Token) == 0
    assert orm.backend.stats.round_trips - start[1] == 1, "an idle sweep is one round trip"


async def test_model_default_ttl_per_call_override_and_removal(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    tokens, counters = orm.repo(Token), orm.repo(Counter)
    default = await tokens.create(data={"code": "d", "owner": "u"})
    left = await tokens.ttl(where={"code": "d"})
    assert left is not None and timedelta(0) < left <= timedelta(milliseconds=400)
    forever = await tokens.create(data={"code": "f", "owner": "u"}, ttl=None)
    assert await tokens.ttl(where={"id": forever.id}) is None
    plain = await counters.create(data={"id": "c"})
    assert await counters.ttl(where={"id": "c"}) is None
    await counters.update(where={"id": plain.id}, data={"note": "n"}, ttl=timedelta(seconds=60))
    assert (await counters.ttl(where={"id": "c"})) is not None
    await counters.update(where={"id": "c"}, data={"note": "m"}, ttl=None)
    assert await counters.ttl(where={"id": "c"}) is None
    await wait_past(timedelta(milliseconds=400))
    assert await tokens.find_unique(where={"id": default.id}) is None
    assert await tokens.find_unique(where={"id": forever.id}) == forever
    await orm.sweep()
    assert (await orm.audit(Token)).ok and (await orm.audit(Counter)).ok
    with pytest.raises(ValidationError, match="ttl must be positive"):
        await tokens.create(data={"code": "z", "owner": "u"}, ttl=timedelta(0))


async def test_an_update_keeps_the_expiry_and_moves_claims_with_it(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    tokens = orm.repo(Token)
    token = await tokens.create(data={"code": "old", "owner": "u"}, ttl=timedelta(milliseconds=300))
    await tokens.update(where={"id": token.id}, data={"code": "new", "score": 5})
    left = await tokens.ttl(where={"code": "new"})
    assert left is not None and left <= timedelta(milliseconds=300), "update must not drop the TTL"
    await wait_past(timedelta(milliseconds=300))
    assert await tokens.find_unique(where={"code": "new"}) is None
    await tokens.create(data={"code": "new", "owner": "v"})
    await orm.sweep(Token)
    assert (await orm.audit(Token)).ok


async def test_touch_slides_the_record_and_its_claims(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    tokens = orm.repo(Token)
    life = timedelta(milliseconds=450)
    token = await tokens.create(data={"code": "slide", "owner": "u"}, ttl=life)
    for _ in range(3):  # 0.75 s in all: alive only because each touch slides it
        await anyio.sleep(0.25)
        assert await tokens.touch(where={"code": "slide"}, ttl=life) is not None
    assert await tokens.find_unique(where={"code": "slide"}) == token
    assert await tokens.refresh(where={"id": token.id}) is not None  # model default: 400 ms
    await wait_past(timedelta(milliseconds=400))
    assert await tokens.touch(where={"code": "slide"}) is None
    with pytest.raises(ValidationError, match="no default ttl"):
        await orm.repo(Counter).touch(where={"id": "x"})


async def test_a_stale_claim_of_a_vanished_record_is_taken_over(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    tokens = orm.repo(Token)
    ghost = await tokens.create(data={"code": "lost", "owner": "u"}, ttl=timedelta(seconds=30))
    await raw.delete(f"{{tok}}:r:{ghost.id}")  # the record vanished but its claim is still there
    assert await raw.get("{tok}:u:code:=lost") == ghost.id
    fresh = await tokens.create(data={"code": "lost", "owner": "v"})
    assert await raw.get("{tok}:u:code:=lost") == fresh.id
    assert await tokens.find_unique(where={"code": "lost"}) == fresh


async def test_expiry_sweeps_keep_indexes_clean_under_concurrent_writers(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA, max_attempts=1000)
    tokens = orm.repo(Token)
    done = anyio.Event()

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(60):
            code = f"c{rng.randint(0, 30)}"
            ttl = timedelta(milliseconds=rng.randint(20, 200))
            try:
                action = rng.random()
                if action < 0.5:
                    await tokens.create(
                        data={"code": code, "owner": f"o{rng.randint(0, 3)}", "score": rng.randint(0, 9)},
                        ttl=ttl,
                    )
                elif action < 0.8:
                    await tokens.update(
                        where={"code": code}, data={"score": rng.randint(0, 9), "label": code}, ttl=ttl
                    )
                else:
                    await tokens.delete(where={"code": code})
            except UniqueConstraintError:
                pass

    async def sweeper() -> None:
        while not done.is_set():
            await orm.sweep(Token, batch=7)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(sweeper)
        async with anyio.create_task_group() as writers:
            for seed in range(16):
                writers.start_soon(writer, seed)
        done.set()
    await anyio.sleep(0.35)
    await orm.sweep(Token)
    report = await orm.audit(Token)
    assert report.ok, str(report)
    assert report.records == await tokens.count() == 0


async def test_10000_concurrent_increments_over_64_tasks_land_exactly(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    counters = orm.repo(Counter)
    await counters.create(data={"id": "hits"})

    async def bump(times: int) -> None:
        for _ in range(times):
            await counters.update(where={"id": "hits"}, data={"hits": {"increment": 1}})

    async with anyio.create_task_group() as group:
        for task in range(64):
            group.start_soon(bump, 10_000 // 64 + (1 if task < 10_000 % 64 else 0))
    final = await counters.find_unique(where={"id": "hits"})
    assert final is not None and final.hits == 10_000
    assert (await orm.audit(Counter)).ok, "the range index moved with every increment"
    assert await counters.update(where={"id": "nobody"}, data={"hits": {"increment": 1}}) is None


async def test_increments_respect_validation_and_nulls(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    bounded = orm.repo(Bounded)
    await bounded.create(data={"id": "b", "hits": 5})
    with pytest.raises(ValidationError):
        await bounded.update(where={"id": "b"}, data={"hits": {"increment": 1}})
    assert (await bounded.find_unique(where={"id": "b"})) == Bounded(id="b", hits=5)
    counters = orm.repo(Counter)
    await counters.create(data={"id": "n"})
    updated = await counters.update(where={"id": "n"}, data={"hits": {"decrement": 3}})
    assert updated is not None and updated.hits == -3
