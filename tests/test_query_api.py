"""The query API on every backend: operators, normalization, ordering, paging, projection, errors,
and what each read costs in round trips."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from redis_orm_async import Field, Model, NotFoundError, Orm, QueryError, Schema

MakeOrm = Callable[..., Orm]


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Person(Model, key_prefix="person"):
    email: str = Field(unique=True)
    name: str = Field(lex=True)
    age: int | None = Field(None, index=True)
    city: str | None = Field(None, index=True)
    tier: Tier = Field(Tier.FREE, index=True)
    joined: datetime | None = Field(None, index=True)
    score: Decimal | None = None
    nickname: str | None = None
    prefs: dict[str, Any] | None = None


class Line(Model, key_prefix="line"):
    """Many rows for cost tests."""

    n: int = Field(index=True)
    group: str = Field(index=True)
    note: str = ""


class Reading(Model, key_prefix="reading"):
    value: float | None = Field(None, index=True)
    tag: str = ""


SCHEMA = Schema([Person, Line, Reading])
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

PEOPLE: list[dict[str, Any]] = [
    {"email": "ada@x.io", "name": "Ada", "age": 36, "city": "London", "tier": Tier.PRO, "joined": T0,
     "score": Decimal("9.5"), "prefs": {"theme": "dark", "size": 2}},
    {"email": "bob@x.io", "name": "Bob", "age": 25, "city": "Paris", "joined": T0 + timedelta(days=1),
     "nickname": "bobby"},
    {"email": "cy@x.io", "name": "Cyd", "age": None, "city": "London", "score": Decimal("9.50")},
    {"email": "di@x.io", "name": "Di", "age": 25, "city": None, "tier": Tier.PRO,
     "prefs": {"size": 2, "theme": "dark"}},
    {"email": "ed@x.io", "name": "Ed:1", "age": 70, "city": "Paris", "joined": T0 - timedelta(days=30)},
]  # fmt: skip


async def seeded(make_orm: MakeOrm) -> tuple[Orm, dict[str, str]]:
    orm = make_orm(SCHEMA)
    created = await orm.repo(Person).create_many(PEOPLE)
    return orm, {p.name: p.id for p in created}


async def names(orm: Orm, **query: Any) -> list[str]:
    return [p.name for p in await orm.repo(Person).find_many(**query)]


async def test_every_operator_answers_as_documented(make_orm: MakeOrm) -> None:
    orm, _ = await seeded(make_orm)
    by_name = {"order_by": {"name": "asc"}}
    assert await names(orm, where={"city": "London"}, **by_name) == ["Ada", "Cyd"]
    assert await names(orm, where={"city": {"eq": None}}, **by_name) == ["Di"]
    assert await names(orm, where={"city": None}, **by_name) == ["Di"]
    assert await names(orm, where={"city": {"not": "London"}}, **by_name) == ["Bob", "Di", "Ed:1"]
    assert await names(orm, where={"city": {"in": ["Paris", None]}}, **by_name) == ["Bob", "Di", "Ed:1"]
    assert await names(orm, where={"age": {"gt": 25}}, **by_name) == ["Ada", "Ed:1"]
    assert await names(orm, where={"age": {"gte": 25, "lt": 70}}, **by_name) == ["Ada", "Bob", "Di"]
    assert await names(orm, where={"age": {"lte": 25}}, **by_name) == ["Bob", "Di"]
    assert await names(orm, where={"age": {"not": 25}}, **by_name) == ["Ada", "Cyd", "Ed:1"], (
        "not matches null"
    )
    assert await names(orm, where={"name": {"startswith": "Ed:"}}) == ["Ed:1"]
    assert await names(orm, where={"nickname": {"contains": "obb"}}) == ["Bob"]
    assert await names(orm, where={"email": "di@x.io"}) == ["Di"]
    assert await names(orm, where={"tier": "pro"}, **by_name) == ["Ada", "Di"]
    assert await names(orm, where={"OR": [{"age": 70}, {"city": None}]}, **by_name) == ["Di", "Ed:1"]
    assert await names(orm, where={"AND": [{"city": "Paris"}, {"age": 25}]}) == ["Bob"]
    assert await names(orm, where={"NOT": {"city": "London"}}, **by_name) == ["Bob", "Di", "Ed:1"]
    assert await names(orm, where={"NOT": [{"city": "London"}, {"age": 25}]}, **by_name) == ["Ed:1"]
    assert await names(orm, where={"city": "Paris", "age": {"gt": 30}}) == ["Ed:1"], "field keys AND"
    assert await names(orm, where={"city": {"in": []}}) == []
    assert await names(orm, where={"OR": []}) == []
    assert await names(orm, where={"AND": []}, **by_name) == ["Ada", "Bob", "Cyd", "Di", "Ed:1"]


async def test_values_are_normalized_through_the_field_type(make_orm: MakeOrm) -> None:
    orm, _ = await seeded(make_orm)
    assert await names(orm, where={"age": "36"}) == ["Ada"]
    assert await names(orm, where={"age": {"in": ["25", 70]}, "city": "Paris"}, order_by={"age": "asc"}) == [
        "Bob",
        "Ed:1",
    ]
    assert await names(orm, where={"joined": T0.isoformat()}) == ["Ada"]
    same_instant = T0.astimezone(__import__("datetime").timezone(timedelta(hours=-5))).isoformat()
    assert await names(orm, where={"joined": same_instant}) == ["Ada"], "aware datetimes compare by instant"
    assert await names(orm, where={"joined": {"gt": T0.isoformat()}}) == ["Bob"]
    assert await names(orm, where={"score": "9.500"}, order_by={"name": "asc"}) == ["Ada", "Cyd"]
    assert await names(orm, where={"prefs": {"theme": "dark", "size": 2}}, order_by={"name": "asc"}) == [
        "Ada",
        "Di",
    ]
    assert await names(
        orm, where={"prefs": {"eq": {"size": 2, "theme": "dark"}}}, order_by={"name": "asc"}
    ) == [
        "Ada",
        "Di",
    ], "JSON equality is deep and ignores key order"
    assert await names(orm, where={"prefs": {"not": None}}, order_by={"name": "asc"}) == ["Ada", "Di"]


async def test_nulls_sort_last_ascending_first_descending_and_ties_break_by_id(make_orm: MakeOrm) -> None:
    orm, ids = await seeded(make_orm)
    by_id = sorted(ids, key=lambda name: ids[name])
    twenty_five = [n for n in by_id if n in ("Bob", "Di")]
    assert await names(orm, order_by={"age": "asc"}) == [*twenty_five, "Ada", "Ed:1", "Cyd"]
    assert await names(orm, order_by={"age": "desc"}) == ["Cyd", "Ed:1", "Ada", *twenty_five[::-1]]
    assert await names(orm, order_by=[{"age": "desc"}, {"id": "asc"}]) == ["Cyd", "Ed:1", "Ada", *twenty_five]
    assert await names(orm, order_by=[{"city": "asc"}, {"age": "desc"}]) == [
        "Cyd",
        "Ada",
        "Ed:1",
        "Bob",
        "Di",
    ]
    assert await names(orm, order_by=[{"age": "asc"}, {"name": "desc"}]) == [
        "Di",
        "Bob",
        "Ada",
        "Ed:1",
        "Cyd",
    ]
    assert await names(orm) == by_id, "the default order is by id"
    assert await names(orm, order_by={"id": "desc"}) == by_id[::-1]
    assert await names(orm, order_by={"tier": "desc"}, take=2) == [
        n for n in by_id[::-1] if n in ("Ada", "Di")
    ]


async def test_take_skip_find_first_and_cursor_paging(make_orm: MakeOrm) -> None:
    orm, _ = await seeded(make_orm)
    people = orm.repo(Person)
    everyone = await names(orm, order_by=[{"age": "desc"}, {"name": "asc"}])
    assert await names(orm, order_by=[{"age": "desc"}, {"name": "asc"}], skip=1, take=2) == everyone[1:3]
    assert await names(orm, take=0) == []
    first = await people.find_first(where={"city": "Paris"}, order_by={"age": "desc"})
    assert first is not None and first.name == "Ed:1"
    assert await people.find_first(where={"city": "Rome"}) is None
    for order in ({"age": "desc"}, {"name": "asc"}, {"id": "desc"}, None):
        pages: list[str] = []
        cursor = None
        while True:
            batch = await people.find_many(order_by=order, take=2, cursor=cursor)
            pages.extend(p.name for p in batch)
            if len(batch) < 2:
                break
            cursor = batch[-1].id
        assert pages == await names(orm, order_by=order), order
    bob, ada = (
        await people.find_unique({"email": "bob@x.io"}),
        await people.find_unique({"email": "ada@x.io"}),
    )
    assert bob is not None and ada is not None
    twenty_five = await names(orm, where={"age": 25}, order_by={"age": "asc"})
    after = await names(orm, where={"age": 25}, order_by={"age": "asc"}, cursor=bob.id)
    assert after == twenty_five[twenty_five.index("Bob") + 1 :]
    assert await names(orm, where={"age": 25}, order_by={"age": "asc"}, cursor=ada.id) == []
    by_age_desc = await names(orm, where={"age": 25}, order_by={"age": "desc"})
    assert await names(orm, where={"age": 25}, order_by={"age": "desc"}, cursor=ada.id) == by_age_desc
    with pytest.raises(NotFoundError):
        await people.find_many(cursor="01NOSUCHID0000000000000000", order_by={"age": "asc"})


async def test_select_reads_only_the_chosen_fields(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm, _ = await seeded(make_orm)
    await raw.config_resetstat()
    rows = await orm.repo(Person).find_many(
        where={"city": "London"}, order_by={"name": "asc"}, select={"name": True}
    )
    stats = await raw.info("commandstats")
    assert "cmdstat_hmget" in stats and "cmdstat_hgetall" not in stats
    assert [r.name for r in rows] == ["Ada", "Cyd"]
    assert rows[0].model_dump() == {"id": rows[0].id, "name": "Ada"}
    with pytest.raises(AttributeError):
        _ = rows[0].age
    one = await orm.repo(Person).find_unique({"email": "ada@x.io"}, select={"age": True, "prefs": True})
    assert one is not None and one.age == 36 and one.prefs == {"theme": "dark", "size": 2}


async def test_bad_queries_fail_before_any_io_naming_field_and_operator(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    people = orm.repo(Person)
    before = orm.backend.stats.snapshot()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"where": {"nope": 1}}, "nope"),
        ({"where": {"age": {"contains": "3"}}}, "age contains"),
        ({"where": {"tier": {"gt": "free"}}}, "tier gt"),
        ({"where": {"prefs": {"lt": 3}}}, "prefs lt"),
        ({"where": {"age": {"in": 3}}}, "age in"),
        ({"where": {"age": {"in": "36"}}}, "age in"),
        ({"where": {"age": {"gt": None}}}, "age gt"),
        ({"where": {"age": {"between": [1, 2]}}}, "age between"),
        ({"where": {"age": "old"}}, "age eq"),
        ({"where": {"OR": 3}}, "OR"),
        ({"where": {"name": {"startswith": 3}}}, "name startswith"),
        ({"order_by": {"prefs": "asc"}}, "prefs order_by"),
        ({"order_by": {"age": "up"}}, "age order_by"),
        ({"order_by": {"ghost": "asc"}}, "ghost"),
        ({"take": -1}, "take"),
        ({"skip": 1.5}, "skip"),
        ({"include": {"friends": True}}, "friends"),
        ({"select": {"age": True}, "include": {}}, "select or include"),
        ({"select": {"age": "yes"}}, "age"),
    ]
    for query, fragment in cases:
        with pytest.raises(QueryError) as info:
            await people.find_many(**query)
        assert fragment in str(info.value), (query, str(info.value))
    with pytest.raises(QueryError, match="ghost"):
        await people.count(where={"ghost": 1})
    with pytest.raises(QueryError, match="age in"):
        await people.delete_many(where={"age": {"in": 1}})
    with pytest.raises(QueryError):
        people.explain(where={"age": {"gt": None}})
    assert orm.backend.stats.snapshot() == before


async def test_indexes_answer_and_scans_walk_the_id_zset(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm, _ = await seeded(make_orm)
    people = orm.repo(Person)
    plan = people.explain(where={"city": "London", "age": {"gt": 30}}, order_by={"age": "asc"}, take=10)
    assert plan.strategy == "page" and plan.exact and not plan.scans
    text = str(plan)
    assert "{person}:i:city:=London" in text and "{person}:z:age" in text and "paged in Redis" in text
    assert people.explain(where={"nickname": "bobby"}).scans
    assert "scans every record" in str(people.explain(where={"nickname": "bobby"}))
    mixed = people.explain(where={"city": "Paris", "nickname": {"contains": "b"}})
    assert mixed.strategy == "candidates" and "nickname contains" in str(mixed)
    assert people.explain(where={"age": {"in": []}}).strategy == "empty"
    assert people.explain(where={"city": "Paris"}, count=True).strategy == "count"
    await raw.config_resetstat()
    assert await names(orm, where={"nickname": "bobby"}) == ["Bob"]
    either = {"OR": [{"city": "Paris"}, {"name": {"startswith": "A"}}], "age": {"gte": 30}}
    assert await names(orm, where=either, order_by={"name": "asc"}) == ["Ada", "Ed:1"]
    stats = await raw.info("commandstats")
    assert not {"cmdstat_keys", "cmdstat_scan"} & set(stats)
    leftovers = [key async for key in raw.scan_iter(match="*tmp*")]
    assert leftovers == [], "temporary keys are removed by the script that made them"


async def test_stale_index_entries_never_leak_rows(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm, ids = await seeded(make_orm)
    keys = orm.schema.meta(Person).keys
    await raw.zadd(keys.equality("city", "London"), {ids["Bob"]: 0})
    await raw.zadd(keys.equality("city", "London"), {"01GHOST0000000000000000000": 0})
    await raw.zadd(keys.range("age"), {ids["Cyd"]: 40})
    assert await names(orm, where={"city": "London"}, order_by={"name": "asc"}) == ["Ada", "Cyd"]
    assert await names(orm, where={"city": "London"}, order_by={"name": "asc"}, take=1) == ["Ada"]
    assert await names(orm, where={"age": {"gte": 36}}, order_by={"age": "asc"}) == ["Ada", "Ed:1"]


async def test_expired_records_are_never_returned_and_counts_stay_exact(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    lines = orm.repo(Line)
    await lines.create_many([{"n": i, "group": "a"} for i in range(6)])
    await lines.create_many([{"n": 10 + i, "group": "a"} for i in range(4)], ttl=timedelta(milliseconds=50))
    await anyio.sleep(0.12)
    assert [x.n for x in await lines.find_many(where={"group": "a"}, order_by={"n": "desc"}, take=3)] == [
        5,
        4,
        3,
    ]
    assert [x.n for x in await lines.find_many(order_by={"n": "asc"}, skip=4, take=5)] == [4, 5]
    assert await lines.count(where={"group": "a"}) == 6
    assert await lines.count(where={"n": {"gte": 3}}) == 3
    assert len(await lines.find_many(where={"note": ""})) == 6


async def test_a_page_costs_two_round_trips_wherever_it_is(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    lines = orm.repo(Line)
    await lines.create_many([{"n": i % 700, "group": "ab"[i % 2]} for i in range(1400)])
    await lines.find_many(take=1)  # loads the script once

    async def cost(**query: Any) -> tuple[int, list[Line]]:
        before = orm.backend.stats.round_trips
        found = await lines.find_many(**query)
        return orm.backend.stats.round_trips - before, found

    trips, page = await cost(where={"n": {"gte": 100}}, order_by={"n": "asc"}, take=50)
    assert trips <= 2 and [x.n for x in page] == sorted([n for n in range(100, 125) for _ in (0, 1)])
    deep, page = await cost(where={"n": {"gte": 100}}, order_by={"n": "desc"}, take=50, skip=900)
    assert deep == trips and len(page) == 50
    filtered, page = await cost(
        where={"group": "a", "n": {"lt": 600}}, order_by={"n": "desc"}, take=50, skip=10
    )
    assert filtered == trips and all(x.group == "a" and x.n < 600 for x in page)
    large, page = await cost(order_by={"n": "asc"}, take=300, skip=500)
    assert large == trips and len(page) == 300
    before = orm.backend.stats.round_trips
    assert await lines.count(where={"group": "b", "n": {"lt": 10}}) == 10
    assert orm.backend.stats.round_trips - before == 1


async def test_bulk_writes_take_a_general_where(make_orm: MakeOrm) -> None:
    orm, _ = await seeded(make_orm)
    people = orm.repo(Person)
    assert await people.update_many(where={"city": "Paris", "age": {"lt": 30}}, data={"nickname": "p"}) == 1
    assert await names(orm, where={"nickname": "p"}) == ["Bob"]
    assert await people.delete_many(where={"OR": [{"age": None}, {"tier": "pro"}]}) == 3
    assert await names(orm, order_by={"name": "asc"}) == ["Bob", "Ed:1"]
    assert (await orm.audit(Person)).ok


async def test_every_window_of_a_tied_order_is_exact(make_orm: MakeOrm) -> None:
    """-0.0 and 0.0 share one score (Redis prints them as -0 and 0); ties span page borders."""
    orm = make_orm(SCHEMA)
    readings = orm.repo(Reading)
    values = [-1.5, -0.0, 0.0, -0.0, 0.0, 0.5, None, float("inf"), -1.5, None]
    created = await readings.create_many([{"value": v, "tag": "abc"[i % 3]} for i, v in enumerate(values)])
    for order in ([("value", False), ("tag", True)], [("value", True)], [("value", False)]):
        expected_all = sorted(created, key=lambda r: r.id, reverse=order[-1][1])
        for name, descending in reversed(order):

            def key(r: Reading, name: str = name) -> tuple[bool, Any]:
                value = getattr(r, name)
                return (True, 0) if value is None else (False, value)

            expected_all.sort(key=key, reverse=descending)
        order_by = [{name: "desc" if d else "asc"} for name, d in order]
        for skip in range(len(values)):
            for take in (1, 2, 3):
                found = await readings.find_many(order_by=order_by, skip=skip, take=take)
                assert [r.id for r in found] == [r.id for r in expected_all[skip : skip + take]], (
                    order,
                    skip,
                    take,
                )
