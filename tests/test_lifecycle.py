"""One record lifecycle on every backend: each write path leaves the same invariants.

Create, update, upsert, counters, touch, expiry, sweep, delete and the same id created again all
diff the record's state line; these tests drive each path, and the cases that once broke, against
real servers, and finish with a clean audit.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_orm_async import (
    UNSET,
    Field,
    Model,
    NotFoundError,
    Orm,
    Schema,
    TransactionConflictError,
    UniqueConstraintError,
    ValidationError,
)

MakeOrm = Callable[..., Orm]
SHORT = timedelta(milliseconds=120)


class Card(Model, key_prefix="card"):
    """A manual string id, an equality index, a unique value and a counter with a range index."""

    id: str
    color: str = Field(index=True)
    email: str | None = Field(None, unique=True)
    hits: int = Field(0, index=True)
    spare: int | None = None


class Pass(Model, key_prefix="pass", ttl=timedelta(minutes=5)):
    """A generated id, a unique token and an indexed owner: a session."""

    token: str = Field(unique=True)
    user_id: str = Field(index=True)


SCHEMA = Schema([Card, Pass])


async def wait_past(ttl: timedelta) -> None:
    await anyio.sleep(ttl.total_seconds() + 0.08)


async def audit_clean(orm: Orm, *models: type[Model]) -> None:
    for model in models or (Card, Pass):
        report = await orm.audit(model)
        assert report.ok, str(report)


@settings(max_examples=6)
@given(path=st.sampled_from(["create", "upsert", "create_many", "transaction"]), email=st.booleans())
async def test_an_id_created_again_after_it_expired_leaves_no_leftovers(
    make_orm: MakeOrm, raw: aioredis.Redis, path: str, email: bool
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.create(data={"id": "c1", "color": "red", "email": "a@x.io" if email else None}, ttl=SHORT)
    await wait_past(SHORT)
    again: dict[str, Any] = {"id": "c1", "color": "blue", "email": "a@x.io" if email else None}
    if path == "create":
        await cards.create(data=again)
    elif path == "upsert":
        await cards.upsert(where={"id": "c1"}, create=again, update={"hits": 1})
    elif path == "create_many":
        await cards.create_many([again])
    else:
        async with orm.transaction() as tx:
            tx.repo(Card).create(data=again)
    assert await cards.count() == 1
    assert await cards.count(where={"color": "red"}) == 0
    assert [c.id for c in await cards.find_many(where={"color": "blue"})] == ["c1"]
    assert await cards.update_many(where={"color": "blue"}, data={"hits": {"increment": 2}}) == 1
    assert await cards.ttl(where={"id": "c1"}) is None
    await audit_clean(orm, Card)
    assert await orm.sweep(Card) == 0
    await audit_clean(orm, Card)


async def test_a_claim_is_checked_against_the_record_it_points_to(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    """A claim left pointing at a record that no longer holds the value (drift by hand) never
    finds that record, never blocks the value, and is taken over by the next writer."""
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.create(data={"id": "a", "color": "red", "email": "a@x.io"})
    await cards.create(data={"id": "b", "color": "red", "email": "b@x.io"})
    stale = orm.schema.meta(Card).keys.unique("email", ["z@x.io"])
    await raw.set(stale, "a")  # points at a live record whose email is not z@x.io
    assert await cards.update(where={"email": "z@x.io"}, data={"hits": 5}) is None
    assert await cards.delete(where={"email": "z@x.io"}) is None
    assert (await cards.find_unique(where={"id": "a"})) == Card(id="a", color="red", email="a@x.io")
    moved = await cards.update(where={"id": "b"}, data={"email": "z@x.io"})
    assert moved is not None and moved.email == "z@x.io"
    assert await raw.get(stale) == "b"
    await audit_clean(orm, Card)


@settings(max_examples=25)
@given(
    start=st.integers(min_value=-(10**40), max_value=10**40),
    steps=st.lists(st.integers(min_value=-(10**30), max_value=10**30), min_size=1, max_size=6),
)
async def test_counters_are_exact_for_any_int(
    make_orm: MakeOrm, raw: aioredis.Redis, start: int, steps: list[int]
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.create(data={"id": "c", "color": "red", "hits": start})
    total = start
    for step in steps:
        op = "increment" if step >= 0 else "decrement"
        updated = await cards.update(where={"id": "c"}, data={"hits": {op: abs(step)}})
        total += step
        assert updated is not None and updated.hits == total
    assert (await cards.find_unique(where={"id": "c"})) == Card(id="c", color="red", hits=total)
    found = await cards.find_many(where={"hits": {"gte": total, "lte": total}})
    assert [c.id for c in found] == ["c"]
    await audit_clean(orm, Card)


async def test_counters_past_64_bits_and_upsert_counters_in_one_round_trip(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.count()
    before = orm.backend.stats.round_trips
    first = await cards.upsert(
        where={"id": "n"}, create={"color": "red", "hits": 2**64}, update={"hits": {"increment": 1}}
    )
    again = await cards.upsert(
        where={"id": "n"}, create={"color": "red", "hits": 2**64}, update={"hits": {"increment": 2**70}}
    )
    assert orm.backend.stats.round_trips - before == 2
    assert first.hits == 2**64 and again.hits == 2**64 + 2**70
    huge = await cards.update(where={"id": "n"}, data={"hits": {"decrement": 10**400}})
    assert huge is not None and huge.hits == 2**64 + 2**70 - 10**400
    assert [c.id for c in await cards.find_many(where={"hits": {"lt": 0}})] == ["n"]
    await audit_clean(orm, Card)


async def test_counters_are_all_or_nothing_across_fields(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.create(data={"id": "c", "color": "red", "hits": 1})
    with pytest.raises(ValidationError, match="null"):
        await cards.update(where={"id": "c"}, data={"hits": {"increment": 1}, "spare": {"increment": 1}})
    key = orm.schema.meta(Card).keys.record("c")
    await raw.hset(key, "spare", "not a number")
    with pytest.raises(ValidationError, match="not an integer"):
        await cards.update(where={"id": "c"}, data={"hits": {"increment": 1}, "spare": {"increment": 1}})
    assert await raw.hget(key, "hits") == "1"
    await raw.hdel(key, "spare")
    assert [c.id for c in await cards.find_many(where={"hits": 1})] == ["c"]


async def test_upsert_refuses_a_create_that_contradicts_its_where(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    with pytest.raises(ValidationError, match=r"create\.email must match where\.email"):
        await cards.upsert(
            where={"email": "w@x.io"}, create={"id": "c", "color": "red", "email": "c@x.io"}, update={}
        )
    with pytest.raises(ValidationError, match=r"create\.id must match where\.id"):
        await cards.upsert(where={"id": "a"}, create={"id": "b", "color": "red"}, update={})
    assert await raw.dbsize() == 0
    made = await cards.upsert(
        where={"email": "w@x.io"}, create={"id": "c", "color": "red", "email": "w@x.io"}, update={}
    )
    assert made.email == "w@x.io"


@pytest.mark.parametrize(
    "ttl", [5, 1.5, "5", True, timedelta(0), timedelta(seconds=-1), timedelta(days=10**6)]
)
async def test_a_ttl_that_is_not_a_positive_timedelta_is_refused_before_any_write(
    make_orm: MakeOrm, raw: aioredis.Redis, ttl: Any
) -> None:
    orm = make_orm(SCHEMA)
    cards, passes = orm.repo(Card), orm.repo(Pass)
    await cards.create(data={"id": "c", "color": "red"})
    before = await raw.dbsize()
    calls = [
        cards.create(data={"id": "d", "color": "red"}, ttl=ttl),
        cards.create_many([{"id": "d", "color": "red"}], ttl=ttl),
        cards.update(where={"id": "c"}, data={"hits": 1}, ttl=ttl),
        cards.update_many(where={"color": "red"}, data={"hits": 1}, ttl=ttl),
        cards.upsert(where={"id": "c"}, create={"color": "red"}, update={}, ttl=ttl),
        cards.upsert(where={"id": "c"}, create={"color": "red"}, update={}, update_ttl=ttl),
        cards.touch(where={"id": "c"}, ttl=ttl),
        passes.touch(where={"token": "t"}, ttl=ttl),
    ]
    for call in calls:
        with pytest.raises(ValidationError, match="ttl"):
            await call
    with pytest.raises(ValidationError, match="ttl"):
        async with orm.transaction() as tx:
            tx.repo(Card).update(where={"id": "c"}, data={"hits": 1}, ttl=ttl)
    assert await raw.dbsize() == before
    assert await cards.find_unique(where={"id": "c"}) == Card(id="c", color="red")


async def test_ttl_none_means_never_expires_everywhere(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    passes = orm.repo(Pass)
    kept = await passes.create(data={"token": "a", "user_id": "u"}, ttl=None)
    assert await passes.ttl(where={"id": kept.id}) is None
    timed = await passes.create(data={"token": "b", "user_id": "u"})
    left = await passes.ttl(where={"id": timed.id})
    assert left is not None and timedelta(minutes=4) < left <= timedelta(minutes=5)
    await passes.touch(where={"id": timed.id}, ttl=None)
    assert await passes.ttl(where={"id": timed.id}) is None
    await passes.touch(where={"id": timed.id}, ttl=UNSET)
    assert await passes.ttl(where={"id": timed.id}) is not None
    await passes.update(where={"id": timed.id}, data={"user_id": "v"}, ttl=None)
    assert await passes.ttl(where={"id": timed.id}) is None
    await audit_clean(orm, Pass)


async def test_writes_survive_a_script_flush(make_orm: MakeOrm, raw: Any) -> None:
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.create(data={"id": "a", "color": "red"})
    await raw.script_flush()
    await cards.create(data={"id": "b", "color": "red", "email": "b@x.io"})
    await cards.update(where={"id": "a"}, data={"hits": {"increment": 3}})
    await raw.script_flush()
    assert await cards.delete(where={"email": "b@x.io"}) is not None
    assert await cards.count() == 1
    await audit_clean(orm, Card)


async def test_100_concurrent_touches_of_one_session_cost_one_round_trip_each(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    passes = orm.repo(Pass)
    session = await passes.create(data={"token": "t", "user_id": "u"})
    before = orm.backend.stats.snapshot()

    async def touch() -> None:
        assert await passes.touch(where={"token": "t"}) == session

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(touch)
    commands, round_trips = orm.backend.stats.snapshot()
    assert round_trips - before[1] == 100 and commands - before[0] == 100
    await audit_clean(orm, Pass)


async def test_contended_counters_never_retry(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA, max_attempts=1)
    cards = orm.repo(Card)
    await cards.create(data={"id": "hot", "color": "red", "email": "h@x.io"})
    before = orm.backend.stats.round_trips

    async def bump(n: int) -> None:
        where = {"id": "hot"} if n % 2 else {"email": "h@x.io"}
        await cards.update(where=where, data={"hits": {"increment": 1}, "color": random.choice("rgb")})

    async with anyio.create_task_group() as group:
        for n in range(200):
            group.start_soon(bump, n)
    assert orm.backend.stats.round_trips - before == 200
    final = await cards.find_unique(where={"id": "hot"})
    assert final is not None and final.hits == 200
    await audit_clean(orm, Card)


async def test_a_read_then_write_update_sees_a_conflict_not_a_lost_update(make_orm: MakeOrm) -> None:
    """A model that validates fields together is updated from the record as read; a writer that
    changed it meanwhile makes the write fail with a retryable conflict, which update retries."""
    from pydantic import model_validator

    class Window(Model, key_prefix="win"):
        id: str
        low: int = Field(index=True)
        high: int

        @model_validator(mode="after")
        def ordered(self) -> Window:
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    orm = make_orm(Schema([Window]), max_attempts=10_000)
    windows = orm.repo(Window)
    await windows.create(data={"id": "w", "low": 0, "high": 1_000})
    with pytest.raises(ValidationError):
        await windows.update(where={"id": "w"}, data={"low": 2_000})

    async def bump() -> None:
        for _ in range(10):
            await windows.update(where={"id": "w"}, data={"low": {"increment": 1}})

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(bump)
    final = await windows.find_unique(where={"id": "w"})
    assert final is not None and final.low == 80
    report = await orm.audit(Window)
    assert report.ok, str(report)
    assert TransactionConflictError.retryable


async def test_a_unique_value_freed_in_one_batch_can_be_taken_in_the_same_batch(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    cards = orm.repo(Card)
    await cards.create(data={"id": "a", "color": "red", "email": "x@x.io"})
    async with orm.transaction() as tx:
        tx.repo(Card).update(where={"id": "a"}, data={"email": "y@x.io"})
        tx.repo(Card).create(data={"id": "b", "color": "red", "email": "x@x.io"})
    found = await cards.find_unique(where={"email": "x@x.io"})
    assert found is not None and found.id == "b"
    with pytest.raises(UniqueConstraintError):
        async with orm.transaction() as tx:
            tx.repo(Card).create(data={"id": "c", "color": "red", "email": "z@x.io"})
            tx.repo(Card).update(where={"id": "a"}, data={"email": "z@x.io"})
    assert await cards.find_unique(where={"id": "c"}) is None
    await audit_clean(orm, Card)


async def test_a_storm_of_expiring_reused_and_counted_records_ends_with_a_clean_audit(
    make_orm: MakeOrm,
) -> None:
    """5,000 operations from 32 tasks over a few ids and unique values: creates with and without
    a ttl (so ids expire and are created again), upserts with counters, updates that move unique
    values, touches, deletes and bulk writes. Every path diffs the same record state."""
    orm = make_orm(SCHEMA, max_attempts=10_000)
    cards = orm.repo(Card)
    rng = random.Random(99)
    ids = [f"c{n}" for n in range(24)]
    emails = [None, *(f"e{n}@x.io" for n in range(10))]
    done = {"ok": 0, "refused": 0}

    def ttl(local: random.Random) -> timedelta | None:
        return local.choice([None, timedelta(milliseconds=local.randint(20, 250))])

    async def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(5000 // 32 + 1):
            card_id, email, color = local.choice(ids), local.choice(emails), local.choice("rgb")
            action = local.randrange(10)
            try:
                if action == 0:
                    await cards.create(data={"id": card_id, "color": color, "email": email}, ttl=ttl(local))
                elif action == 1:
                    await cards.upsert(
                        where={"id": card_id},
                        create={"color": color, "email": email, "hits": 2**63},
                        update={"hits": {"increment": local.randint(-(2**70), 2**70)}},
                        ttl=ttl(local),
                    )
                elif action == 2:
                    await cards.update(where={"id": card_id}, data={"email": email, "color": color})
                elif action == 3:
                    await cards.update(where={"id": card_id}, data={"hits": {"increment": 1}})
                elif action == 4:
                    await cards.touch(where={"id": card_id}, ttl=ttl(local))
                elif action == 5:
                    await cards.delete(
                        where={"id": card_id} if local.random() < 0.5 else {"email": email or "x"}
                    )
                elif action == 6 and local.random() < 0.1:
                    await cards.delete_many(where={"color": color, "hits": {"lt": 0}})
                elif action == 7 and local.random() < 0.2:
                    await cards.update_many(where={"color": color}, data={"spare": local.randint(0, 9)})
                elif action == 8:
                    async with orm.transaction() as tx:
                        tx.repo(Card).update(where={"id": card_id}, data={"color": color})
                        tx.repo(Card).delete(where={"id": local.choice(ids)})
                else:
                    await cards.create_many(
                        [{"id": f"{card_id}-{n}", "color": color} for n in range(2)], ttl=ttl(local)
                    )
                done["ok"] += 1
            except (UniqueConstraintError, ValidationError):
                done["refused"] += 1

    async with anyio.create_task_group() as group:
        for task in range(32):
            group.start_soon(writer, rng.randrange(2**32) + task)
    assert sum(done.values()) >= 5000 and done["ok"] > 2500
    await audit_dangling_only(orm)
    await wait_past(timedelta(milliseconds=300))
    await orm.sweep(Card)
    await audit_clean(orm, Card)
    assert await cards.count() == len(await cards.find_many())


async def audit_dangling_only(orm: Orm) -> None:
    """Before the sweep, expired records may leave entries behind, and nothing else may be off."""
    report = await orm.audit(Card)
    assert all(p.kind == "dangling" for p in report.problems), str(report)


class Login(Model, key_prefix="login", ttl=timedelta(milliseconds=250), max_life=timedelta(milliseconds=700)):
    """A sliding session (idle timeout 250 ms) with a hard cap (700 ms from its creation)."""

    token: str = Field(unique=True)


@pytest.mark.parametrize("scripted", [True, False])
async def test_a_sliding_session_ends_at_its_absolute_cap_however_often_it_is_touched(
    make_orm: MakeOrm, backend_name: str, scripted: bool
) -> None:
    if not scripted and backend_name == "upstash":
        scripted = True  # Upstash has no WATCH: its only write path is the script
    orm = make_orm(Schema([Login]))
    if not scripted:
        orm.backend.features = dataclasses.replace(orm.backend.features, scripting=False)
    logins = orm.repo(Login)
    session = await logins.create(data={"token": "t"})
    touched = 0
    while await logins.touch(where={"token": "t"}) is not None:
        try:
            left = await logins.ttl(where={"id": session.id})
        except NotFoundError:
            break  # the cap passed between the touch and this read
        assert left is not None and left <= timedelta(milliseconds=700)
        touched += 1
        await anyio.sleep(0.05)
    assert touched >= 5, "touches kept it alive until the cap"
    assert await logins.find_unique(where={"token": "t"}) is None
    permanent = await logins.create(data={"token": "p"}, ttl=None)
    left = await logins.ttl(where={"id": permanent.id})
    assert left is not None and left <= timedelta(milliseconds=700), "ttl=None cannot pass the cap"
    await orm.sweep(Login)
    report = await orm.audit(Login)
    assert report.ok, str(report)


async def test_revoking_every_session_of_a_user_costs_one_round_trip_per_thousand(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    passes = orm.repo(Pass)
    await passes.create_many([{"token": f"t{n}", "user_id": "u1"} for n in range(2_500)])
    await passes.create_many([{"token": f"o{n}", "user_id": "u2"} for n in range(10)])
    before = orm.backend.stats.round_trips
    assert await passes.delete_many(where={"user_id": "u1"}) == 2_500
    assert orm.backend.stats.round_trips - before == 3
    assert await passes.count(where={"user_id": "u1"}) == 0
    assert await passes.count() == 10
    assert await passes.find_unique(where={"token": "t7"}) is None
    assert await passes.create(data={"token": "t7", "user_id": "u3"}), "the token is free again"
    await audit_clean(orm, Pass)


class Pref(Model, key_prefix="pref"):
    """Nullable fields whose default is not None: a None written must read back as None."""

    id: str
    limit: int | None = 5
    label: str | None = Field("d", index=True)
    note: str | None = None


async def test_a_none_written_over_a_default_reads_back_as_none(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(Schema([Pref]))
    prefs = orm.repo(Pref)
    made = await prefs.create(data={"id": "a", "limit": None, "label": None})
    assert (made.limit, made.label) == (None, None)
    assert await prefs.find_unique(where={"id": "a"}) == made
    assert [p.id for p in await prefs.find_many(where={"label": None})] == ["a"]
    await prefs.create(data={"id": "b"})
    assert (await prefs.find_unique(where={"id": "b"})) == Pref(id="b", limit=5, label="d")
    back = await prefs.update(where={"id": "a"}, data={"limit": 7})
    assert back is not None and (back.limit, back.label) == (7, None)
    assert await prefs.find_unique(where={"id": "a"}) == back
    cleared = await prefs.update(where={"id": "b"}, data={"label": None, "limit": None})
    assert cleared is not None and (cleared.limit, cleared.label) == (None, None)
    assert await prefs.find_unique(where={"id": "b"}) == cleared
    assert await prefs.count(where={"label": None}) == 2
    upserted = await prefs.upsert(where={"id": "c"}, create={"limit": None}, update={})
    assert (await prefs.find_unique(where={"id": "c"})) == upserted == Pref(id="c", limit=None, label="d")
    report = await orm.audit(Pref)
    assert report.ok, str(report)
