"""Query parsing and planning without a server: which index answers what, exactly or not."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from redis_orm_async import Field, Model, Plan, QueryError, Schema
from redis_orm_async._query.match import matcher, sort_rows
from redis_orm_async._query.parse import And, Compare, Not, OrderKey, parse_order, parse_query
from redis_orm_async._query.planner import (
    AllIds,
    ClaimOf,
    Inter,
    LexPrefix,
    LexRange,
    Members,
    Minus,
    NoIds,
    ScoreRange,
    Union,
    build_plan,
    compile_program,
    index_node,
)


class Item(Model, key_prefix="item"):
    kind: str | None = Field(None, index=True)
    qty: int | None = Field(None, index=True)
    price: Decimal | None = Field(None, index=True)
    ratio: float | None = Field(None, index=True)
    at: datetime | None = Field(None, index=True)
    title: str = Field("", lex=True)
    sku: str | None = Field(None, unique=True)
    memo: str | None = None


class Slot(Model, key_prefix="slot"):
    id: int
    size: int = Field(0, index=True)


SCHEMA = Schema([Item, Slot])
ITEM, SLOT = SCHEMA.meta(Item), SCHEMA.meta(Slot)


def node(where: dict[str, Any], meta: Any = ITEM) -> tuple[Any, bool]:
    return index_node(meta, parse_query(meta, where).where)


def test_equality_uses_the_value_set_and_null_has_its_own_set() -> None:
    assert node({"kind": "a:b"}) == (
        Members("{item}:i:kind:=a%3Ab", "kind = 'a:b' (SET {item}:i:kind:=a%3Ab)"),
        True,
    )
    null, exact = node({"kind": None})
    assert isinstance(null, Members) and null.key == "{item}:i:kind:-" and exact
    union, exact = node({"kind": {"in": ["a", "b"]}})
    assert isinstance(union, Union) and len(union.items) == 2 and exact


def test_range_bounds_are_exact_only_where_a_double_holds_the_value() -> None:
    small, exact = node({"qty": {"gt": 5}})
    assert small == ScoreRange("{item}:z:qty", "(5.0", "+inf", small.label) and exact
    big, exact = node({"qty": {"gt": 2**53 + 1}})
    assert isinstance(big, ScoreRange) and big.low == repr(float(2**53)) and not exact, "widened, re-checked"
    price, exact = node({"price": {"lte": "0.1"}})
    assert isinstance(price, ScoreRange) and price.high == "0.1" and not exact
    ratio, exact = node({"ratio": {"lt": 0.5}})
    assert isinstance(ratio, ScoreRange) and ratio.high == "(0.5" and exact
    when, exact = node({"at": datetime(2024, 1, 1, tzinfo=UTC)})
    assert isinstance(when, ScoreRange) and not exact, "a naive twin at the same instant shares the score"
    assert node({"at": {"gte": "2024-01-01T00:00:00+00:00"}})[1]


def test_ranges_of_one_field_merge_and_nulls_are_the_complement_of_the_zset() -> None:
    merged, exact = node({"qty": {"gte": 2, "lt": 9}, "AND": [{"qty": {"gt": 3}}]})
    assert isinstance(merged, ScoreRange) and (merged.low, merged.high) == ("(3.0", "(9.0") and exact
    null, exact = node({"qty": None})
    assert null == Minus(AllIds(), Members("{item}:z:qty", null.right.label)) and exact  # type: ignore[union-attr]


def test_negation_complements_exact_nodes_and_gives_up_on_inexact_ones() -> None:
    negated, exact = node({"kind": {"not": "a"}})
    assert isinstance(negated, Minus) and isinstance(negated.left, AllIds) and exact
    assert node({"NOT": {"memo": "x"}}) == (AllIds(), False)
    assert node({"NOT": {"price": "1.5"}}) == (AllIds(), False), "the complement of a superset is no superset"
    demorgan, exact = node({"NOT": {"OR": [{"kind": "a"}, {"qty": 1}]}})
    assert isinstance(demorgan, Inter) and all(isinstance(i, Minus) for i in demorgan.items) and exact


def test_lex_unique_and_id_predicates_have_their_own_indexes() -> None:
    prefix, exact = node({"title": {"startswith": "a:"}})
    assert prefix == LexPrefix("{item}:l:title", "a%3A", True, prefix.label) and exact
    equal, exact = node({"title": "ab"})
    assert isinstance(equal, LexPrefix) and equal.prefix == "ab\x00" and exact
    claim, exact = node({"sku": "S-1"})
    assert isinstance(claim, ClaimOf) and claim.key.startswith("{item}:u:sku:") and exact
    assert node({"id": {"gte": "01A"}})[0] == LexRange(
        "{item}:ids", "[01A", "+", node({"id": {"gte": "01A"}})[0].label
    )
    slot, exact = node({"id": {"in": [3, "4"]}}, SLOT)
    assert isinstance(slot, Union) and [i.low for i in slot.items] == ["3.0", "4.0"] and exact  # type: ignore[union-attr]


def test_unindexed_or_contains_leaves_an_inexact_superset() -> None:
    assert node({"memo": "x"}) == (AllIds(), False)
    assert node({"title": {"contains": "x"}}) == (AllIds(), False)
    narrowed, exact = node({"kind": "a", "memo": {"startswith": "x"}})
    assert isinstance(narrowed, Members) and not exact
    assert node({"OR": [{"kind": "a"}, {"memo": "x"}]}) == (AllIds(), False)
    assert node({"kind": {"in": []}}) == (NoIds(), True)
    assert node({"OR": [{"kind": {"in": []}}, {"AND": []}]}) == (AllIds(), True)


def plan(where: dict[str, Any] | None = None, order_by: Any = None, **kw: Any) -> Plan:
    return build_plan(
        ITEM, parse_query(ITEM, where, order_by, kw.get("take"), kw.get("skip", 0)), kw.get("op", "find")
    )


def test_strategies() -> None:
    assert plan({"kind": "a"}, {"qty": "desc"}, take=5).strategy == "page"
    assert plan(None, {"qty": "asc"}).strategy == "page"
    assert plan({"kind": "a"}, {"memo": "asc"}).strategy == "candidates"
    assert plan({"kind": "a", "memo": "x"}).strategy == "candidates"
    assert plan({"memo": "x"}).strategy == "scan"
    assert plan(None, {"memo": "asc"}).strategy == "scan"
    assert plan({"kind": {"in": []}}).strategy == "empty"
    assert plan({"kind": "a"}, take=0).strategy == "empty"
    assert plan({"kind": "a"}, op="count").strategy == "count"
    assert plan({"price": {"gt": 1}}, op="count").strategy == "candidates"


def test_explain_names_the_index_and_whether_it_scans() -> None:
    text = str(plan({"kind": "a", "qty": {"gte": 3}}, {"qty": "desc"}, take=50))
    assert "find Item: page" in text and "{item}:i:kind:=a" in text and "{item}:z:qty" in text
    assert "order: qty desc, id desc (paged in Redis on {item}:z:qty" in text and "round trips: 2" in text
    scan = plan({"memo": {"contains": "x"}}).explain()
    assert "scan (scans every record)" in scan and "filtered in Python: memo contains 'x'" in scan


def test_programs_are_postfix_over_keys_with_one_hash_tag() -> None:
    source = node({"OR": [{"kind": "a"}, {"qty": {"gt": 1}}], "NOT": {"kind": "b"}})[0]
    program = compile_program(ITEM, source, ITEM.keys.ids())
    keys, tokens = program.finish(lambda n: ITEM.keys.temporary(f"t:{n}"), 0)
    assert all(key.startswith("{item}:") for key in keys)
    assert keys[:3] == ["{item}:ids", "{item}:exp", "{item}:ids"]
    assert sum(1 for key in keys if ":tmp:" in key) == program.temps == 4
    ops = [t for t in tokens if isinstance(t, str) and t in "AKSXPCIUD" and len(t) == 1]
    assert ops == ["K", "S", "U", "A", "K", "D", "I"]


def test_where_parsing_builds_a_small_tree_and_checks_before_io() -> None:
    where = parse_query(ITEM, {"qty": {"gt": "3", "lte": 9}, "NOT": [{"kind": None}]}).where
    assert where == And((And((Compare("qty", "gt", "3"), Compare("qty", "lte", "9"))),
                         And((Not(Compare("kind", "eq", None)),))))  # fmt: skip
    with pytest.raises(QueryError) as info:
        parse_query(ITEM, {"qty": {"startswith": "1"}})
    assert info.value.meta == {"model": "Item", "field": "qty", "operator": "startswith"}
    with pytest.raises(QueryError, match="NaN"):
        parse_query(ITEM, {"ratio": {"gt": float("nan")}})


def test_python_evaluation_and_the_null_ordering_rule() -> None:
    rows = [{"id": "c", "qty": "2"}, {"id": "a"}, {"id": "b", "qty": "10"}, {"id": "d", "qty": "2"}]
    test = matcher(ITEM, parse_query(ITEM, {"qty": {"not": 10}}).where)
    assert [r["id"] for r in rows if test(r)] == ["c", "a", "d"], "not matches null"
    asc = sort_rows(ITEM, rows, parse_order(ITEM, {"qty": "asc"}))
    assert [r["id"] for r in asc] == ["c", "d", "b", "a"]
    desc = sort_rows(ITEM, rows, parse_order(ITEM, {"qty": "desc"}))
    assert [r["id"] for r in desc] == ["a", "b", "d", "c"], "nulls first, ties by id in the same direction"
    assert parse_order(ITEM, [{"qty": "desc"}, {"kind": "asc"}])[-1] == OrderKey("id", False)
