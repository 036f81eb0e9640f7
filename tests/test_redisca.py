"""The rest of the redisca seed: public id generators (ULIDs and short hex ids, usable as default
factories) and read-only access to a record's HASH as it is in Redis."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import anyio
import redis.asyncio as aioredis

from redis_orm_async import Field, Model, Orm, Schema, new_hex_id, new_ulid

MakeOrm = Callable[..., Orm]
HEX = set("0123456789abcdef")


class Ticket(Model, key_prefix="tkt"):
    id: str = Field(default_factory=new_hex_id)
    code: str = Field(unique=True)
    price: Decimal = Decimal("0")
    opened: datetime | None = None
    due: date | None = None
    tags: list[str] = []
    note: str | None = None


class Entry(Model, key_prefix="ent"):
    id: str = Field(default_factory=new_ulid)
    title: str


SCHEMA = Schema([Ticket, Entry])


def test_hex_ids_are_16_hex_characters_in_creation_order() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_hex_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert all(len(value) == 16 and set(value) <= HEX for value in made)
    assert all(a < b for a, b in itertools.pairwise(made)), "strictly increasing, as text"
    assert before <= int(made[0][:11], 16) <= int(made[-1][:11], 16) <= after + 1_000


def test_hex_ids_from_many_threads_are_unique() -> None:
    per_thread: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(new_hex_id() for _ in range(2_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for out in per_thread for value in out]
    assert len(set(everything)) == 16_000 and all(out == sorted(out) for out in per_thread)


async def test_generators_are_default_factories_and_ids_follow_creation(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    tickets, entries = orm.repo(Ticket), orm.repo(Entry)
    made = [await tickets.create(data={"code": f"c{n}"}) for n in range(5)]
    made += await tickets.create_many([{"code": f"b{n}"} for n in range(5)])
    assert all(len(t.id) == 16 and set(t.id) <= HEX for t in made)
    assert [t.id for t in await tickets.find_many()] == [t.id for t in made], "id order is creation order"
    found = await tickets.find_unique(where={"id": made[3].id})
    assert found == made[3]
    entry = await entries.create(data={"title": "x"})
    assert len(entry.id) == 26 and entry.id == (await entries.find_first()).id  # type: ignore[union-attr]


async def test_raw_is_the_hash_as_stored(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    tickets = orm.repo(Ticket)
    opened = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    ticket = await tickets.create(
        data={"code": "A-1", "price": "12.50", "opened": opened, "due": date(2024, 6, 1), "tags": ["x", "y"]}
    )
    stored = await tickets.raw(where={"id": ticket.id})
    assert stored == await raw.hgetall(orm.schema.meta(Ticket).keys.record(ticket.id))
    assert stored == {
        "id": ticket.id,
        "code": "A-1",
        "price": "12.50",
        "opened": "2024-05-06T07:08:09+02:00",
        "due": "2024-06-01",
        "tags": '["x","y"]',
    }, "None fields are absent, every value is text"
    assert await tickets.raw(where={"code": "A-1"}) == stored
    assert await tickets.raw(where={"code": "nope"}) is None
    assert await tickets.raw(where={"id": "0000000000000000"}) is None
    copy = await tickets.raw(where={"id": ticket.id})
    assert copy is not None
    copy["code"] = "changed"
    assert await tickets.find_unique(where={"code": "A-1"}) == ticket, "the dict is a copy"


async def test_raw_of_an_expired_record_is_none(make_orm: MakeOrm) -> None:
    tickets = make_orm(SCHEMA).repo(Ticket)
    ticket = await tickets.create(data={"code": "soon"}, ttl=timedelta(milliseconds=50))
    assert await tickets.raw(where={"code": "soon"}) is not None
    await anyio.sleep(0.1)
    assert await tickets.raw(where={"id": ticket.id}) is None
    assert await tickets.raw(where={"code": "soon"}) is None
