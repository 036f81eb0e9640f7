"""The bulk create path: fresh records of one model written straight from the arguments the client
spelled out (``create_many``, and a transaction of creates only).

Whatever the batch holds (expiring or not, a ``max_life`` cap, compound and single uniques, lex and
range indexes, values the key layout escapes, values claimed by live, expired or hand-edited
records, batches larger than one command's slice), it is written whole or not at all, every record
reads back through each index it has, and the audit stays clean.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_orm_async import Field, Model, Orm, Schema, UniqueConstraintError, ValidationError

MakeOrm = Callable[..., Orm]


class Badge(Model, key_prefix="badge", max_life=timedelta(hours=1), unique_together=[("team", "seat")]):
    """A generated id, a unique code, a compound unique, a lex index, a range and an equality."""

    code: str = Field(unique=True)
    team: str = Field(index=True)
    seat: int = Field(index=True)
    label: str = Field("", lex=True)
    nick: str | None = None


SCHEMA = Schema([Badge])
ODD = ["", "a:b", "{x}", "*?", "line\nbreak", "nul\x00", "é", "~=#-%", "x" * 300]

texts = st.sampled_from(ODD) | st.text(max_size=12)


def badge(code: str, team: str, seat: int, label: str = "") -> dict[str, Any]:
    return {"code": code, "team": team, "seat": seat, "label": label}


async def read_back(orm: Orm, made: list[Badge]) -> None:
    """Each record is found by its id, its unique code, its team and its seat, and the audit is clean."""
    badges = orm.repo(Badge)
    for record in made:
        assert await badges.find_unique({"id": record.id}) == record
        assert await badges.find_unique({"code": record.code}) == record
        assert record.id in {b.id for b in await badges.find_many(where={"team": record.team})}
        assert record.id in {
            b.id for b in await badges.find_many(where={"seat": {"gte": record.seat, "lte": record.seat}})
        }
        assert record.id in {
            b.id for b in await badges.find_many(where={"label": {"startswith": record.label}})
        }
    report = await orm.audit(Badge)
    assert report.ok, str(report)


@settings(max_examples=12)
@given(
    rows=st.lists(st.tuples(texts, texts, st.integers(-(2**70), 2**70), texts), min_size=1, max_size=12),
    ttl=st.sampled_from([None, timedelta(minutes=5)]),
    via=st.sampled_from(["create_many", "transaction"]),
)
async def test_a_bulk_create_reads_back_through_every_index(
    make_orm: MakeOrm,
    raw: aioredis.Redis,
    rows: list[tuple[str, str, int, str]],
    ttl: timedelta | None,
    via: str,
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    badges = orm.repo(Badge)
    codes = {code for code, *_ in rows}
    places = {(team, seat) for _, team, seat, _ in rows}
    data = [badge(*row) for row in rows]
    if len(codes) < len(rows) or len(places) < len(rows):
        with pytest.raises((ValidationError, UniqueConstraintError)):
            await _create(orm, data, ttl, via)
        assert await badges.count() == 0
        return
    made = await _create(orm, data, ttl, via)
    assert [(b.code, b.team, b.seat, b.label) for b in made] == rows
    assert await badges.count() == len(rows)
    for record in made:
        remaining = await badges.ttl(where={"id": record.id})
        assert remaining is not None  # max_life caps every record, with or without a ttl
        assert remaining <= (ttl or timedelta(hours=1))
    await read_back(orm, made)


async def _create(orm: Orm, data: list[dict[str, Any]], ttl: timedelta | None, via: str) -> list[Badge]:
    badges = orm.repo(Badge)
    if via == "create_many":
        return await badges.create_many(data, ttl=ttl)
    async with orm.transaction() as tx:
        for item in data:
            tx.repo(Badge).create(data=item, ttl=ttl)
    return [b for b in await badges.find_many(order_by={"id": "asc"})]


@settings(max_examples=10)
@given(holder=st.sampled_from(["live", "expired", "stale"]), position=st.integers(0, 4))
async def test_a_taken_claim_refuses_the_whole_batch_only_while_a_live_record_holds_it(
    make_orm: MakeOrm, raw: aioredis.Redis, holder: str, position: int
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    badges = orm.repo(Badge)
    first = await badges.create(data=badge("taken", "red", 1), ttl=timedelta(milliseconds=60))
    if holder == "live":
        await badges.touch(where={"id": first.id}, ttl=None)
    elif holder == "expired":
        await anyio.sleep(0.15)
    else:  # the claim points at a record that holds another code now
        await badges.update(where={"id": first.id}, data={"code": "moved"}, ttl=None)
        await raw.set(orm.schema.meta(Badge).keys.unique("code", ["taken"]), first.id)
    batch = [badge(f"c{n}", "blue", n) for n in range(5)]
    batch[position] = badge("taken", "blue", position)
    if holder == "live":
        with pytest.raises(UniqueConstraintError) as caught:
            await badges.create_many(batch)
        assert caught.value.fields == ("code",)
        assert await badges.count(where={"team": "blue"}) == 0
        assert [b.id for b in await badges.find_many()] == [first.id]
        return
    made = await badges.create_many(batch)
    assert (await badges.find_unique({"code": "taken"})) == made[position]
    await read_back(orm, made)


async def test_a_transaction_of_thousands_of_creates_is_written_in_slices(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    """More entries in one index key, and more claims, than one server command takes at once."""
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    async with orm.transaction() as tx:
        for n in range(1_700):
            tx.repo(Badge).create(data=badge(f"k{n}", "big", n, label=f"l{n % 7}"))
    badges = orm.repo(Badge)
    assert await badges.count(where={"team": "big"}) == 1_700
    assert await badges.count(where={"seat": {"gte": 1_000}}) == 700
    assert await badges.count(where={"label": {"startswith": "l3"}}) == len(range(3, 1_700, 7))
    report = await orm.audit(Badge)
    assert report.ok, str(report)
