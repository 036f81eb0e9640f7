"""The bulk create path: fresh records of one model written straight from the arguments the client
spelled out (``create_many``, and a transaction of creates only).

Whatever the batch holds (expiring or not, a ``max_life`` cap, compound and single uniques, lex and
range indexes, values the key layout escapes, values claimed by live, expired or hand-edited
records, batches larger than one command's slice), it is written whole or not at all, every record
reads back through each index it has, and the audit stays clean.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_orm_async import Field, Model, Orm, Schema, UniqueConstraintError, ValidationError
from redis_orm_async._model.keys import escape

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


def _decode_bulk(
    words: list[str], unique_names: list[str], range_names: list[str], base: str
) -> dict[str, Any]:
    """The records, state lines, claims and index entries a bulk create's words say, as the
    script reads them (``bulk_create`` in ``_scripts/write.lua``), with the entries it adds."""
    ttl, escapes = words[0], words[1]
    count = int(words[2])
    names = words[3 : 3 + count]
    at = 3 + count
    partial = int(words[at])
    masks = {int(words[at + 1 + 2 * i]): words[at + 2 + 2 * i] for i in range(partial)}
    at += 1 + 2 * partial
    records: dict[str, dict[str, str]] = {}
    lines: dict[str, str] = {}
    claims: dict[str, str] = {}
    zsets: dict[str, dict[str, str]] = {}
    for position in range(1, int(words[at]) + 1):
        record_id = words[at + 1]
        at += 2
        mask = masks.get(position, "1" * len(names))
        shown = [name for name, bit in zip(names, mask, strict=True) if bit == "1"]
        records[record_id] = {"id": record_id, **dict(zip(shown, words[at : at + len(shown)], strict=True))}
        at += len(shown)
        if words[at]:
            lines[record_id] = words[at]
        for offset in range(1, len(unique_names) + 1):
            if words[at + offset]:
                claims[words[at + offset]] = record_id
        at += len(unique_names)
        for offset, name in enumerate(range_names, start=1):
            if words[at + offset]:
                zsets.setdefault(f"{base}:z:{name}", {})[record_id] = words[at + offset]
        at += len(range_names)
        zsets.setdefault("ids", {})[record_id] = "0"
    groups = int(words[at + 1])
    at += 2
    for _ in range(groups):
        key, kind, size = words[at], words[at + 1], int(words[at + 2])
        assert kind in ("m", "0")
        zsets.setdefault(key, {}).update(dict.fromkeys(words[at + 3 : at + 3 + size], "0"))
        at += 3 + size
    assert at == len(words)
    assert escapes == ("=" if all(escape(i) == i for i in records) else "e")
    return {"ttl": ttl, "records": records, "lines": lines, "claims": claims, "zsets": zsets}


@settings(max_examples=60)
@given(
    rows=st.lists(
        st.tuples(texts, texts, st.integers(-(2**70), 2**70), texts, st.none() | texts),
        min_size=1,
        max_size=6,
    ),
    ttl_ms=st.none() | st.integers(1, 10**9),
)
def test_the_bulk_words_say_what_the_record_state_derives(
    rows: list[tuple[str, str, int, str, str | None]], ttl_ms: int | None
) -> None:
    """Whatever the values (escaped, digested, null), each record's hash, state line, claims and
    index entries, as the script reads them from the words, are the ones ``_model/state.py``
    derives from its facts."""
    from redis_orm_async._engine.bulk import BulkWords
    from redis_orm_async._model.state import claim_keys, index_entries, record_facts, state_line

    meta = SCHEMA.meta(Badge)
    chunk = BulkWords(meta, "" if ttl_ms is None else str(ttl_ms))
    expected: dict[str, Any] = {"records": {}, "lines": {}, "claims": {}, "zsets": {}}
    base = meta.keys.base
    for code, team, seat, label, nick in rows:
        record = Badge.model_validate({**badge(code, team, seat, label), "nick": nick})
        id_text = meta.id_text(record.id)
        encoded = meta.encode(record)
        chunk.add(id_text, encoded)
        facts = record_facts(meta, encoded)
        stored = {name: text for name, text in encoded.items() if text is not None}
        expected["records"][id_text] = {"id": id_text, **stored}
        expected["lines"][id_text] = state_line(meta, facts)
        expected["claims"].update(dict.fromkeys(claim_keys(meta, id_text, facts), id_text))
        for key, (member, score) in index_entries(meta, id_text, facts).items():
            expected["zsets"].setdefault("ids" if key == f"{base}:ids" else key, {})[member] = score
    ranges = [name for name, field in meta.fields.items() if field.index == "range"]
    decoded = _decode_bulk(chunk.words(), [c.name for c in meta.uniques], ranges, base)
    assert decoded.pop("ttl") == ("" if ttl_ms is None else str(ttl_ms))
    assert decoded == expected


class Ticket(Model, key_prefix="ticket"):
    """A generated id whose text the key layout escapes, and a nullable unique."""

    id: str = Field(default_factory=lambda: f"t-{uuid.uuid4()}:{{x}}*")
    serial: str | None = Field(None, unique=True)
    note: str | None = None


async def test_generated_ids_the_key_layout_escapes_are_written_and_read_back(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    await raw.flushdb()
    orm = make_orm(Schema([Ticket]))
    tickets = orm.repo(Ticket)
    made = await tickets.create_many(
        [{"serial": None, "note": "n"}, {"serial": "s1"}, {"serial": "s2", "note": None}, {}]
    )
    made.append(await tickets.create(data={"serial": "s3", "note": "x"}))
    for record in made:
        assert await tickets.find_unique({"id": record.id}) == record
    assert await tickets.find_unique({"serial": "s2"}) == made[2]
    assert await tickets.count() == 5
    with pytest.raises(UniqueConstraintError):
        await tickets.create_many([{"serial": "s9"}, {"serial": "s1"}])
    assert await tickets.count() == 5
    report = await orm.audit(Ticket)
    assert report.ok, str(report)


async def test_a_transaction_of_creates_with_different_ttls_keeps_each_ttl(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    async with orm.transaction() as tx:
        tx.repo(Badge).create(data=badge("short", "t", 1), ttl=timedelta(minutes=1))
        tx.repo(Badge).create(data=badge("long", "t", 2), ttl=timedelta(minutes=50))
    badges = orm.repo(Badge)
    short = await badges.find_unique({"code": "short"})
    long = await badges.find_unique({"code": "long"})
    assert short is not None and long is not None
    short_ttl = await badges.ttl(where={"id": short.id})
    long_ttl = await badges.ttl(where={"id": long.id})
    assert short_ttl is not None and short_ttl <= timedelta(minutes=1)
    assert long_ttl is not None and timedelta(minutes=45) < long_ttl <= timedelta(minutes=50)
    report = await orm.audit(Badge)
    assert report.ok, str(report)


async def test_create_many_across_chunks_refuses_repeats_before_writing_and_keeps_whole_chunks(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    """A repeat anywhere in the batch refuses it before anything is written; a value a live
    record holds refuses its own chunk of 500 and the ones after it, and leaves earlier ones."""
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    badges = orm.repo(Badge)
    assert await badges.create_many([]) == []
    batch = [badge(f"k{n}", "many", n) for n in range(1_200)]
    with pytest.raises(ValidationError) as repeated:
        await badges.create_many([*batch[:1_100], {**batch[1_100], "code": "k3"}])
    assert repeated.value.meta["items"] == (3, 1_100)
    assert await badges.count() == 0
    await badges.create(data=badge("held", "other", 0))
    with pytest.raises(UniqueConstraintError):
        await badges.create_many([*batch[:700], badge("held", "many", 700), *batch[701:]])
    assert await badges.count(where={"team": "many"}) == 500
    assert {b.seat for b in await badges.find_many(where={"team": "many"}, take=1_000)} == set(range(500))
    report = await orm.audit(Badge)
    assert report.ok, str(report)
