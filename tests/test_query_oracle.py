"""Differential tests: find_many and count on the real server against a plain Python oracle.

Hypothesis builds a dataset and random where/order_by/take/skip/cursor queries over every field
kind and operator, None and missing values included; the oracle filters and sorts the Python
values of the same records with its own code (nulls last ascending, first descending, ties by id
in the direction of the last order key). Values are chosen to hit the hard cases: ints past 2**53
and Decimals that share a double score, -0.0 and infinities, aware datetimes at one instant in two
offsets, and characters that the key layout escapes.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import anyio
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from redis_orm_async import Condition, Field, Model, Order, Orm, Schema, and_, asc, col, desc, not_, or_

MakeOrm = Callable[..., Orm]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Rec(Model, key_prefix="rec"):
    n: int | None = Field(None, index=True)
    m: int | None = None
    f: float | None = Field(None, index=True)
    d: Decimal | None = Field(None, index=True)
    s: str | None = Field(None, index=True)
    t: str | None = Field(None, lex=True)
    u: str | None = None
    b: bool | None = Field(None, index=True)
    at: datetime | None = Field(None, index=True)
    day: date | None = None
    e: Color | None = Field(None, index=True)
    j: dict[str, int] | None = None
    code: str | None = Field(None, unique=True)


class Num(Model, key_prefix="num"):
    """Manual int ids: the id ZSET orders them numerically, not as text."""

    id: int
    n: int | None = Field(None, index=True)
    s: str | None = None


SCHEMA = Schema([Rec, Num])
BIG = 2**53
INTS = [-3, -1, 0, 1, 2, 3, BIG, BIG + 1, BIG + 2, -BIG - 1, 10**18]
FLOATS = [float("-inf"), -1.5, -0.0, 0.0, 0.5, 1.5, 1e300, float("inf")]
DECIMALS = [
    Decimal(x)
    for x in ("0.1", "0.10", "0.1000000000000000000001", "-1", "1.5", "1e20", "100000000000000000001")
]
TEXTS = ["a", "b", "ab", "a:b", "%", "{x}", "", "ä", "b*"]
PREFIXES = ["", "a", "b", "a:", "%", "ab", "{", "ä"]
UTC2 = timezone(timedelta(hours=2))
BASE = datetime(2024, 1, 1, tzinfo=UTC)
DATETIMES = [BASE, BASE + timedelta(hours=1), BASE.astimezone(UTC2), BASE + timedelta(microseconds=1),
             BASE - timedelta(days=400), datetime(2400, 1, 1, tzinfo=UTC)]  # fmt: skip
DAYS = [date(2024, 1, 1), date(2023, 12, 31), date(1999, 5, 5)]
JSONS: list[dict[str, int]] = [{}, {"a": 1}, {"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 2}]
CODES = ["x1", "x2", "x3", "x:4", "x5", "x6", "x7", "x8"]

VALUES: dict[str, list[Any]] = {
    "n": INTS, "m": INTS, "f": FLOATS, "d": DECIMALS, "s": TEXTS, "t": TEXTS, "u": TEXTS,
    "b": [True, False], "at": DATETIMES, "day": DAYS, "e": list(Color), "j": JSONS, "code": CODES,
}  # fmt: skip
ORDERED = {"n", "m", "f", "d", "s", "t", "u", "at", "day"}
ORDERABLE = ORDERED | {"b", "e"}
TEXTUAL = {"s", "t", "u"}
ADAPTERS = {name: TypeAdapter(Rec.model_fields[name].annotation) for name in VALUES}


def spelled(name: str, value: Any) -> Any:
    """Alternative spellings that must normalize through the field's type to the same value."""
    if value is None:
        return None
    if name in ("n", "m") and abs(value) < 10:
        return str(value)
    if name == "at":
        return value.isoformat()
    if name == "d":
        return str(value)
    if name == "e":
        return value.value
    return value


@st.composite
def leaf(draw: st.DrawFn, names: list[str], values: dict[str, list[Any]]) -> dict[str, Any]:
    name = draw(st.sampled_from(names))
    pool = values[name]
    value = st.sampled_from(pool)
    maybe_none = st.one_of(st.none(), value)
    ops = ["bare", "eq", "not", "in"]
    if name in ORDERED:
        ops += ["gt", "gte", "lt", "lte"]
    if name in TEXTUAL:
        ops += ["contains", "startswith"]
    op = draw(st.sampled_from(ops))
    respell = draw(st.booleans())

    def fix(v: Any) -> Any:
        return spelled(name, v) if respell else v

    if op == "bare":
        return {name: fix(draw(maybe_none))}
    if op in ("eq", "not"):
        return {name: {op: fix(draw(maybe_none))}}
    if op == "in":
        return {name: {"in": [fix(v) for v in draw(st.lists(maybe_none, max_size=3))]}}
    if op in ("contains", "startswith"):
        return {name: {op: draw(st.sampled_from(PREFIXES))}}
    first = {op: fix(draw(value))}
    if draw(st.booleans()):
        other = draw(st.sampled_from(["gt", "gte", "lt", "lte"]))
        first[other] = fix(draw(value))
    return {name: first}


def where_strategy(names: list[str], values: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    leaves = leaf(names, values)

    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        group = st.lists(inner, max_size=3)
        return st.one_of(
            st.builds(lambda items: {"AND": items}, group),
            st.builds(lambda items: {"OR": items}, group),
            st.builds(lambda items: {"NOT": items}, st.one_of(inner, group)),
            st.builds(lambda a, b: {**a, **b}, inner, inner),
        )

    return st.one_of(st.none(), st.recursive(leaves, extend, max_leaves=4))


def normalized(name: str, value: Any, int_ids: bool) -> Any:
    if value is None:
        return None
    if name == "id":
        return int(value) if int_ids else value
    return ADAPTERS[name].validate_python(value) if name in ADAPTERS else value


def oracle_match(record: Model, where: dict[str, Any] | None, int_ids: bool) -> bool:
    """Plain Python semantics, written independently of the library's evaluator."""
    if where is None:
        return True
    for key, condition in where.items():
        if key in ("AND", "OR", "NOT"):
            clauses = condition if isinstance(condition, list) else [condition]
            results = [oracle_match(record, clause, int_ids) for clause in clauses]
            ok = all(results) if key == "AND" else any(results) if key == "OR" else not any(results)
        else:
            ok = oracle_field(getattr(record, key), key, condition, int_ids)
        if not ok:
            return False
    return True


def oracle_field(actual: Any, name: str, condition: Any, int_ids: bool) -> bool:
    ops = condition if isinstance(condition, dict) and name != "j" else {"eq": condition}
    if name == "j" and isinstance(condition, dict) and condition and set(condition) <= {"eq", "not", "in"}:
        ops = condition
    for op, raw in ops.items():
        if op == "in":
            ok = any(oracle_field(actual, name, {"eq": item}, int_ids) for item in raw)
        elif op in ("eq", "not"):
            wanted = normalized(name, raw, int_ids)
            equal = actual is None if wanted is None else actual is not None and actual == wanted
            ok = equal if op == "eq" else not equal
        elif op == "contains":
            ok = actual is not None and raw in actual
        elif op == "startswith":
            ok = actual is not None and actual.startswith(raw)
        else:
            ok = actual is not None and compare(op, actual, normalized(name, raw, int_ids))
        if not ok:
            return False
    return True


def compare(op: str, actual: Any, bound: Any) -> bool:
    if op == "gt":
        return bool(actual > bound)
    if op == "gte":
        return bool(actual >= bound)
    if op == "lt":
        return bool(actual < bound)
    return bool(actual <= bound)


def oracle_sort_key(name: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return list(type(value)).index(value)
    return value


def oracle_order(records: list[Model], order: list[tuple[str, bool]]) -> list[Model]:
    result = sorted(records, key=lambda r: r.id, reverse=bool(order) and order[-1][1])
    for name, descending in reversed(order):

        def key(record: Model, name: str = name) -> tuple[bool, Any]:
            value = getattr(record, name)
            return (True, 0) if value is None else (False, oracle_sort_key(name, value))

        result.sort(key=key, reverse=descending)
    return result


def oracle_find(
    records: list[Model], where: dict[str, Any] | None, order: list[tuple[str, bool]],
    take: int | None, skip: int, cursor: Model | None, int_ids: bool,
) -> list[Any]:  # fmt: skip
    matching = [r for r in records if oracle_match(r, where, int_ids)]
    if cursor is not None:
        ordered = oracle_order([r for r in matching if r.id != cursor.id] + [cursor], order)
        matching = ordered[[r.id for r in ordered].index(cursor.id) + 1 :]
    else:
        matching = oracle_order(matching, order)
    end = None if take is None else skip + take
    return [r.id for r in matching[skip:end]]


def record_strategy() -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        name: st.one_of(st.none(), st.sampled_from(pool)) for name, pool in VALUES.items() if name != "code"
    }
    return st.fixed_dictionaries({}, optional=fields)


order_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(ORDERABLE | {"id"})), st.booleans()),
    max_size=3,
    unique_by=lambda x: x[0],
)


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    records = draw(st.lists(record_strategy(), max_size=18))
    codes = draw(st.lists(st.sampled_from(CODES), unique=True, min_size=len(records), max_size=len(records))
                 if len(records) <= len(CODES) else st.just([]))  # fmt: skip
    for record, code in zip(records, codes, strict=False):
        record["code"] = code
    fates = draw(st.lists(st.sampled_from(FATES), min_size=len(records), max_size=len(records)))
    names = sorted(VALUES)
    queries = []
    for number in range(3):
        order = draw(order_strategy)
        where = draw(where_strategy(names, VALUES))
        if number == 2 and order and order[0][0] in ("n", "f", "d", "at"):
            # one range of the ordering field: the page walks that ZSET's rank window directly
            name, pool = order[0][0], VALUES[order[0][0]]
            where = {name: {draw(st.sampled_from(["gt", "gte"])): draw(st.sampled_from(pool))}}
            if draw(st.booleans()):
                where[name][draw(st.sampled_from(["lt", "lte"]))] = draw(st.sampled_from(pool))
        queries.append({
            "where": where,
            "order": order,
            "take": draw(st.one_of(st.none(), st.integers(0, 8))),
            "skip": draw(st.integers(0, 5)),
            "cursor": draw(st.one_of(st.none(), st.integers(0, 30))),
        })  # fmt: skip
    return {"records": records, "fates": fates, "queries": queries}


FATES = ["live", "live", "live", "expiring", "expired"]
"""What becomes of a record: kept, kept with a long ttl (the expiry ZSET holds it), or expired
before the queries run, its index entries still waiting for the sweep."""


async def create_with_fates(repo: Any, records: list[dict[str, Any]], fates: list[str]) -> list[Any]:
    """Create the records by fate; returns the live ones, which the oracle answers from."""
    kept = [r for r, fate in zip(records, fates, strict=True) if fate == "live"]
    expiring = [r for r, fate in zip(records, fates, strict=True) if fate == "expiring"]
    doomed = [r for r, fate in zip(records, fates, strict=True) if fate == "expired"]
    created = await repo.create_many(kept) + await repo.create_many(expiring, ttl=timedelta(hours=1))
    if doomed:
        await repo.create_many(doomed, ttl=timedelta(milliseconds=15))
        await anyio.sleep(0.04)
    return sorted(created, key=lambda r: r.id)


def order_by(order: list[tuple[str, bool]]) -> list[dict[str, str]]:
    return [{name: "desc" if descending else "asc"} for name, descending in order]


OPERATORS = {"eq", "not", "in", "gt", "gte", "lt", "lte", "contains", "startswith"}


def expressions(model: type[Model], where: dict[str, Any] | None, spelling: int = 0) -> list[Condition]:
    """The same where as field expressions (``Rec.n >= 3``), spelled with operators or with
    and_/or_/not_ in turn, for the oracle to judge the expression form by the dict form's answer."""
    if where is None:
        return []
    out: list[Condition] = []
    for number, (key, value) in enumerate(where.items()):
        turn = spelling + number
        if key in ("AND", "OR", "NOT"):
            clauses = value if isinstance(value, list) else [value]
            parts = [_joined(expressions(model, clause, turn + 1), turn) for clause in clauses]
            if key == "AND":
                out.append(and_(*parts))
            elif key == "OR":
                out.append(_any(parts, turn))
            else:
                out.append(and_(*[(~part if turn % 2 else not_(part)) for part in parts]))
        else:
            out.append(_field_expression(model, key, value, turn))
    return out


def _joined(parts: list[Condition], turn: int) -> Condition:
    if len(parts) == 2 and turn % 2:
        return parts[0] & parts[1]
    return and_(*parts)


def _any(parts: list[Condition], turn: int) -> Condition:
    if len(parts) == 2 and turn % 2:
        return parts[0] | parts[1]
    return or_(*parts)


def _field_expression(model: type[Model], name: str, value: Any, turn: int) -> Condition:
    field = col(getattr(model, name))
    is_ops = isinstance(value, dict) and (name != "j" or (value and set(value) <= {"eq", "not", "in"}))
    if not is_ops:
        return field == value
    if set(value) == {"gte", "lte"} and turn % 2:
        return field.range(value["gte"], value["lte"])
    tests: list[Condition] = []
    for op, operand in value.items():
        if op == "not" and isinstance(operand, dict) and (name != "j" or set(operand) <= OPERATORS):
            tests.append(not_(_field_expression(model, name, operand, turn)))
        elif op == "not":
            tests.append(field != operand)
        else:
            tests.append({
                "eq": lambda v: field == v, "in": lambda v: field.in_(v), "gt": lambda v: field > v,
                "gte": lambda v: field >= v, "lt": lambda v: field < v, "lte": lambda v: field <= v,
                "contains": lambda v: field.contains(v), "startswith": lambda v: field.startswith(v),
            }[op](operand))  # fmt: skip
    return tests[0] if len(tests) == 1 else and_(*tests)


def ordered(model: type[Model], order: list[tuple[str, bool]]) -> list[Order]:
    return [(desc if descending else asc)(getattr(model, name)) for name, descending in order]


async def assert_queries_match_the_oracle(
    repo: Any, created: list[Any], queries: list[dict[str, Any]], *, int_ids: bool
) -> None:
    """find_many (ids, and whole records for string ids) and count against the oracle."""
    for spec in queries:
        where, order = spec["where"], spec["order"]
        position = spec["cursor"]
        cursor = created[position] if position is not None and position < len(created) else None
        expected = oracle_find(created, where, order, spec["take"], spec["skip"], cursor, int_ids)
        found = await repo.find_many(
            where=where, order_by=order_by(order), take=spec["take"], skip=spec["skip"],
            cursor=None if cursor is None else cursor.id,
        )  # fmt: skip
        plan = repo.explain(where=where, order_by=order_by(order), take=spec["take"], skip=spec["skip"])
        assert [r.id for r in found] == expected, f"{where} {order} {spec}\n{plan}"
        if not int_ids:
            assert found == [next(c for c in created if c.id == i) for i in expected]
        matching = sum(oracle_match(r, where, int_ids) for r in created)
        assert await repo.count(where=where) == matching, f"{where}\n{repo.explain(where=where, count=True)}"
        conditions = expressions(repo.model, where, spec["skip"])
        found = await repo.find_many(
            *conditions, order_by=ordered(repo.model, order), take=spec["take"], skip=spec["skip"],
            cursor=None if cursor is None else cursor.id,
        )  # fmt: skip
        assert [r.id for r in found] == expected, f"expressions {conditions} of {where} {order} {spec}"
        assert await repo.count(*conditions) == matching, f"expressions of {where}"


@settings(max_examples=70)
@given(data=scenario())
async def test_find_many_and_count_equal_the_oracle(
    make_orm: MakeOrm, raw: aioredis.Redis, data: dict[str, Any]
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    repo = orm.repo(Rec)
    created = await create_with_fates(repo, data["records"], data["fates"])
    await assert_queries_match_the_oracle(repo, created, data["queries"], int_ids=False)


@settings(max_examples=25)
@given(data=scenario())
async def test_reads_without_scripting_equal_the_oracle(
    make_orm: MakeOrm, raw: aioredis.Redis, data: dict[str, Any]
) -> None:
    """The plain-command path that servers refusing scripts get (the records are written first:
    Upstash, having no WATCH, writes only through scripts)."""
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    repo = orm.repo(Rec)
    created = await create_with_fates(repo, data["records"], data["fates"])
    orm.backend.features = dataclasses.replace(orm.backend.features, scripting=False)
    await assert_queries_match_the_oracle(repo, created, data["queries"], int_ids=False)


NUM_VALUES: dict[str, list[Any]] = {"n": INTS, "s": TEXTS, "id": [*range(-20, 21), BIG, -BIG]}


@st.composite
def num_scenario(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.sampled_from(NUM_VALUES["id"]), unique=True, max_size=15))
    records = [
        {"id": i, **draw(st.fixed_dictionaries({}, optional={
            "n": st.one_of(st.none(), st.sampled_from(INTS)), "s": st.sampled_from(TEXTS)}))}
        for i in ids
    ]  # fmt: skip
    queries = []
    for _ in range(3):
        queries.append({
            "where": draw(where_strategy(["id", "n", "s"], NUM_VALUES)),
            "order": draw(st.lists(st.tuples(st.sampled_from(["id", "n", "s"]), st.booleans()),
                                   max_size=2, unique_by=lambda x: x[0])),
            "take": draw(st.one_of(st.none(), st.integers(0, 6))),
            "skip": draw(st.integers(0, 4)),
            "cursor": draw(st.one_of(st.none(), st.integers(0, 20))),
        })  # fmt: skip
    return {"records": records, "queries": queries}


@settings(max_examples=50)
@given(data=num_scenario())
async def test_int_id_models_page_and_count_like_the_oracle(
    make_orm: MakeOrm, raw: aioredis.Redis, data: dict[str, Any]
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    repo = orm.repo(Num)
    created = await repo.create_many(data["records"])
    await assert_queries_match_the_oracle(repo, created, data["queries"], int_ids=True)


@settings(max_examples=40)
@given(data=scenario())
async def test_bulk_writes_select_what_the_oracle_selects(
    make_orm: MakeOrm, raw: aioredis.Redis, data: dict[str, Any]
) -> None:
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    repo = orm.repo(Rec)
    created = await repo.create_many(data["records"])
    where = data["queries"][0]["where"] or {}
    chosen = {r.id for r in created if oracle_match(r, where, False)}
    assert await repo.update_many(where=where, data={"m": 7}) == len(chosen)
    assert {r.id for r in await repo.find_many(where={"m": 7})} == chosen
    chosen = {r.id for r in await repo.find_many() if oracle_match(r, where, False)}  # m changed
    assert await repo.update_many(and_(*expressions(Rec, where)), {"u": "zz"}) == len(chosen)
    assert {r.id for r in await repo.find_many(Rec.u == "zz")} == chosen
    where = data["queries"][1]["where"] or {}
    doomed = {r.id for r in await repo.find_many() if oracle_match(r, where, False)}
    assert await repo.delete_many(and_(*expressions(Rec, where))) == len(doomed)
    assert {r.id for r in await repo.find_many()} == {r.id for r in created} - doomed
    assert (await orm.audit(Rec)).ok


@settings(max_examples=8)
@given(
    live=st.lists(record_strategy(), min_size=100, max_size=140),
    dead=st.lists(record_strategy(), min_size=1, max_size=20),
    queries=st.lists(
        st.tuples(
            where_strategy(sorted(VALUES), VALUES), order_strategy, st.integers(1, 40), st.integers(0, 60)
        ),
        min_size=6,
        max_size=6,
    ),
)
async def test_larger_pages_with_expired_records_equal_the_oracle(
    make_orm: MakeOrm,
    raw: aioredis.Redis,
    live: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    queries: Any,
) -> None:
    """Enough rows that pages jump, walk and intersect; expired rows await the sweep meanwhile."""
    await raw.flushdb()
    orm = make_orm(SCHEMA)
    repo = orm.repo(Rec)
    await repo.create_many(dead, ttl=timedelta(milliseconds=20))
    created = await repo.create_many(live)
    await anyio.sleep(0.05)
    for where, order, take, skip in queries:
        for cursor in (None, created[skip]):
            expected = oracle_find(created, where, order, take, skip, cursor, False)
            found = await repo.find_many(
                where=where,
                order_by=order_by(order),
                take=take,
                skip=skip,
                cursor=None if cursor is None else cursor.id,
            )
            assert [r.id for r in found] == expected, f"{where} {order} {take} {skip}"
        assert await repo.count(where=where) == sum(oracle_match(r, where, False) for r in created)


class Deep(Model, key_prefix="deep"):
    """Enough rows that walks leave the first 1,024 ranks of a window and count ranks instead."""

    n: int | None = Field(None, index=True)
    s: str = Field("a", index=True)


class DeepInt(Model, key_prefix="deepint"):
    id: int
    n: int | None = Field(None, index=True)
    s: str = Field("a", index=True)


DEEP = Schema([Deep, DeepInt])


def deep_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    values = [*range(60), BIG, BIG + 1, BIG + 2]
    return [{"n": None if rng.random() < 0.1 else rng.choice(values), "s": rng.choice("aabbc")}
            for _ in range(count)]  # fmt: skip


async def test_deep_pages_and_cursors_equal_the_oracle(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(DEEP)
    strs = await orm.repo(Deep).create_many(deep_rows(2600, 1))
    ints = await orm.repo(DeepInt).create_many(
        [{"id": i * 3 - 4000, **row} for i, row in enumerate(deep_rows(1500, 2))]
    )
    middle = sorted(r.id for r in strs)[1300]
    queries: list[tuple[dict[str, Any] | None, list[tuple[str, bool]], int, int]] = [
        (None, [("n", False)], 7, 1030),
        (None, [("n", True)], 7, 2000),
        (None, [("n", False)], 9, 2330),
        ({"n": {"gte": 1}}, [("n", False)], 6, 1100),
        ({"n": {"gte": 1}}, [("n", True)], 6, 1100),
        ({"n": {"lt": 40}}, [("n", True)], 5, 1050),
        ({"n": {"gt": 3, "lte": 50}}, [("n", False)], 5, 1500),
        ({"s": "a"}, [("n", False)], 5, 900),
        ({"s": "a"}, [("n", True)], 5, 10),
        ({"s": "a"}, [("id", True)], 8, 800),
        ({"s": {"in": ["a", "b"]}}, [("id", False)], 8, 1500),
        ({"s": "c", "n": {"gte": 30}}, [("n", True)], 8, 200),
        ({"n": None}, [("n", False)], 4, 100),
        ({"n": {"not": None}, "s": "b"}, [("n", True)], 4, 700),
        ({"id": {"gt": middle}}, [("id", True)], 5, 1100),
        ({"id": {"lt": middle}}, [("id", False)], 5, 1200),
    ]
    for model, created, int_ids in ((Deep, strs, False), (DeepInt, ints, True)):
        repo = orm.repo(model)
        for where, order, take, skip in queries:
            if int_ids and where is not None and "id" in where:
                where = {"id": {next(iter(where["id"])): -100}}
            expected = oracle_find(created, where, order, take, skip, None, int_ids)
            found = await repo.find_many(where=where, order_by=order_by(order), take=take, skip=skip)
            assert [r.id for r in found] == expected, (model.__name__, where, order, skip)
            for position in (skip, len(created) // 2):
                cursor = created[position % len(created)]
                expected = oracle_find(created, where, order, take, 0, cursor, int_ids)
                found = await repo.find_many(
                    where=where, order_by=order_by(order), take=take, cursor=cursor.id
                )
                assert [r.id for r in found] == expected, (model.__name__, where, order, "cursor", position)
            count = sum(oracle_match(r, where, int_ids) for r in created)
            assert await repo.count(where=where) == count, (model.__name__, where)
