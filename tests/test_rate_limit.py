"""The rate limiter: exact under concurrency, one round trip per call, windows timed by the server's
clock. On every backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_orm_async import (
    Field,
    Model,
    Orm,
    QueryError,
    Rate,
    RateLimitBucket,
    RateLimitedError,
    RateLimiter,
    RateLimitStatus,
    Schema,
    SchemaError,
    ValidationError,
)
from redis_orm_async._engine.prepared import PreparedWrite
from redis_orm_async._query.ttl import UNSET

from .models import User

MakeOrm = Callable[..., Orm]
SCHEMA = Schema([User])


async def test_exactly_the_limit_passes_among_64_concurrent_calls_one_round_trip_each(
    make_orm: MakeOrm,
) -> None:
    orm = make_orm(SCHEMA)
    limiter = orm.rate_limiter("10/minute", name="api")
    await orm.rate_limiter("1/minute", name="warm-up").hit("x")  # the script is loaded once
    statuses: list[RateLimitStatus] = []

    async def call() -> None:
        statuses.append(await limiter.hit("client-1"))

    before = orm.backend.stats.round_trips
    async with anyio.create_task_group() as group:
        for _ in range(64):
            group.start_soon(call)
    assert orm.backend.stats.round_trips - before == 64
    allowed = [status for status in statuses if status.allowed]
    assert len(allowed) == 10
    assert sorted(status.remaining for status in allowed) == list(range(10))
    assert sorted(status.hits for status in statuses) == list(range(1, 65))
    denied = [status for status in statuses if not status.allowed]
    assert all(s.remaining == 0 and 0 < s.reset_after <= 60 and s.limit == 10 for s in denied)
    with pytest.raises(RateLimitedError) as caught:
        denied[0].check()
    assert caught.value.retryable and caught.value.retry_after >= 1 and caught.value.code == "rate_limited"
    assert (await limiter.hit("client-2")).allowed, "each key has its own window"
    assert (await orm.rate_limiter("10/minute", name="other").hit("client-1")).allowed
    assert (await orm.audit(RateLimitBucket)).ok


async def test_the_window_is_timed_by_the_server_not_by_the_apps_clocks(make_orm: MakeOrm) -> None:
    """Two app servers whose clocks are an hour apart share one window: it is the bucket's life
    on the server, not a window number computed from an app's clock."""
    orm = make_orm(SCHEMA)
    buckets = orm.repo(RateLimitBucket)
    ahead = RateLimiter(buckets, "5/minute", name="login", clock=lambda: time.time() + 3600)
    behind = RateLimiter(buckets, "5/minute", name="login", clock=lambda: time.time() - 3600)
    results = [await (ahead if i % 2 else behind).hit("ada") for i in range(10)]
    assert [status.allowed for status in results] == [True] * 5 + [False] * 5
    assert all(0 <= status.reset_after <= 60 for status in results)
    left = await buckets.ttl({"id": "login:ada"})
    assert left is not None and timedelta(seconds=50) < left <= timedelta(minutes=1)


async def test_a_new_window_opens_when_the_server_expires_the_bucket(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    limiter = orm.rate_limiter(Rate.of(2, timedelta(milliseconds=400)), name="burst")
    assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]
    first_left = await orm.repo(RateLimitBucket).ttl({"id": "burst:k"})
    assert first_left is not None and first_left <= timedelta(milliseconds=400), "set once, never slid"
    await anyio.sleep(0.5)
    again = await limiter.hit("k")
    assert again.allowed and again.hits == 1 and again.remaining == 1
    await limiter.reset("k")
    assert (await limiter.hit("k")).hits == 1
    await anyio.sleep(0.5)
    assert await orm.sweep() >= 1, "sweeping every model includes the limiter's buckets"
    assert (await orm.audit(RateLimitBucket)).ok


async def test_long_keys_are_hashed_into_short_bucket_ids(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    limiter = orm.rate_limiter("1/minute", name="keys")
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    assert limiter.bucket_id(long_a) != limiter.bucket_id(long_b)
    assert len(limiter.bucket_id(long_a)) < 80
    assert (await limiter.hit(long_a)).allowed and (await limiter.hit(long_b)).allowed
    assert not (await limiter.hit(long_a)).allowed
    assert await orm.repo(RateLimitBucket).count() == 2


def test_rates_are_read_one_way_and_bad_ones_are_refused() -> None:
    assert Rate.parse("20/minute") == Rate(20, timedelta(minutes=1))
    assert Rate.parse("5 per second") == Rate(5, timedelta(seconds=1))
    assert Rate.parse("100/15minutes") == Rate(100, timedelta(minutes=15))
    assert Rate.parse("1000/day") == Rate(1000, timedelta(days=1))
    assert Rate.parse("3/Hours") == Rate(3, timedelta(hours=1))
    for bad in ("20", "0/minute", "20/fortnight", "-1/second", "x/minute", ""):
        with pytest.raises(QueryError, match=r"20/minute|at least 1 call"):
            Rate.parse(bad)
    with pytest.raises(QueryError):
        Rate.of(1, timedelta(0))
    with pytest.raises(QueryError):
        Rate.of(True, timedelta(seconds=1))


async def test_a_model_on_the_buckets_key_prefix_is_refused_with_a_hint(make_orm: MakeOrm) -> None:
    class Clash(Model, key_prefix="ratelimit"):
        name: str = Field(index=True)

    orm = make_orm(Schema([Clash]))
    with pytest.raises(SchemaError, match="another key_prefix"):
        orm.rate_limiter("1/second", name="x")
    with pytest.raises(QueryError, match="non-empty name"):
        make_orm(SCHEMA).rate_limiter("1/second", name="")


async def test_buckets_in_the_apps_schema_are_used_as_they_are(make_orm: MakeOrm) -> None:
    orm = make_orm(Schema([User, RateLimitBucket], namespace="app1"))
    limiter = orm.rate_limiter("1/minute", name="n")
    assert (await limiter.hit("k")).allowed
    assert orm.repo(RateLimitBucket).meta is orm.schema.meta(RateLimitBucket)
    assert await orm.repo(RateLimitBucket).count() == 1


KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=0, max_size=40) | st.sampled_from(
    ["a:b", "{tag}", "*", "line\nbreak", "nul\x00", "%41", "x" * 300, "ü€😀"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS, now=st.floats(0, 4e9, allow_nan=False))
async def test_a_hit_sends_exactly_the_words_of_the_plain_upsert_it_stands_for(
    make_orm: MakeOrm, key: str, now: float
) -> None:
    """A hit runs its upsert planned once with stand-in texts; whatever the key and the clock,
    the script receives what the plain upsert would have sent."""
    orm = make_orm(SCHEMA)
    limiter = RateLimiter(orm.repo(RateLimitBucket), "3/minute", name="words", clock=lambda: now)
    sent: list[tuple[list[str], list[str]]] = []
    real_eval = orm.backend.eval

    async def spy(script: Any, keys: Any, args: Any) -> Any:
        sent.append((list(keys), [str(arg) for arg in args]))
        return await real_eval(script, keys, args)

    orm.backend.eval = spy  # type: ignore[method-assign]
    status = await limiter.hit(key)
    await orm.repo(RateLimitBucket).upsert(
        where={"id": limiter.bucket_id(key)},
        create={"hits": 1, "opened_ms": int(now * 1000)},
        update={"hits": {"increment": 1}},
        ttl=limiter.rate.window,
    )
    assert len(sent) == 2 and sent[0] == sent[1]
    bucket = await orm.repo(RateLimitBucket).find_unique(where={"id": limiter.bucket_id(key)})
    assert bucket is not None and bucket.hits == status.hits + 1 and bucket.opened_ms == int(now * 1000)
    await orm.repo(RateLimitBucket).delete(where={"id": limiter.bucket_id(key)})


async def test_a_key_that_cannot_be_stored_is_refused_before_any_io(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    limiter = orm.rate_limiter("3/minute", name="bad")
    await limiter.hit("fine")
    before = orm.backend.stats.round_trips
    for key in ("\ud800", "lone \udfff surrogate"):
        with pytest.raises(ValidationError, match="surrogate") as caught:
            await limiter.hit(key)
        assert "\ud800" not in str(caught.value) and caught.value.backend_kind is not None
    with pytest.raises(QueryError, match="str"):
        await limiter.hit(b"bytes")  # type: ignore[arg-type]
    assert orm.backend.stats.round_trips == before
    assert await orm.repo(RateLimitBucket).count() == 1


async def test_a_write_whose_words_derive_texts_from_a_stand_in_is_not_prepared(make_orm: MakeOrm) -> None:
    """An indexed field's score or a claim is computed from the value: such a write cannot be
    run by putting new texts in the stand-in's places, so it is never prepared."""
    orm = make_orm(Schema([User]))
    users = orm.repo(User)
    prepared = users._prepared_upsert(
        {"id": "stand-in-id"}, {"email": "stand-in@x.io", "age": 1}, {"age": {"increment": 1}},
        ttl=UNSET, stand_ins=("stand-in-id",),
    )  # fmt: skip
    assert prepared is None, "a model with index entries and claims"
    buckets = make_orm(SCHEMA).repo(RateLimitBucket)
    made = buckets._prepared_upsert(
        {"id": "w:k"}, {"hits": 1, "opened_ms": 123456}, {"hits": {"increment": 1}},
        ttl=timedelta(minutes=1), stand_ins=("w:k", "123456"),
    )  # fmt: skip
    assert made is not None and made.slots[0] and made.slots[1]
    refused = buckets._prepared_upsert(
        {"id": "w:k"}, {"hits": 1, "opened_ms": 123456}, {"hits": {"increment": 1}},
        ttl=timedelta(minutes=1), stand_ins=("w:k", "1234"),
    )  # fmt: skip
    assert refused is None, "a stand-in found inside another word"
    assert PreparedWrite.of(made.engine, made.op, ("not-there",)) is None
