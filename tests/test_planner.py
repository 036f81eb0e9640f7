"""Query parsing and planning without a server: which index answers what, exactly or not."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from redis_orm_async import Field, Model, Plan, QueryError, Schema
from redis_orm_async._query.match import matcher, sort_rows
from redis_orm_async._query.parse import And, Compare, Not, OrderKey, parse_order, parse_query
from redis_orm_async._query.planner import (
    FALSE_TEST,
    TRUE_TEST,
    Combined,
    Conj,
    Disj,
    Everything,
    Leaf,
    Negation,
    Smallest,
    after_prefix,
    build_plan,
    build_test,
    source_of,
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
    return build_test(meta, parse_query(meta, where).where)


def test_equality_is_membership_of_the_value_zset_and_null_has_its_own() -> None:
    equal, exact = node({"kind": "a:b"})
    assert equal == Leaf("M", "{item}:i:kind:=a%3Ab", "kind = 'a:b' (ZSET {item}:i:kind:=a%3Ab)",
                         id_ordered=True) and exact  # fmt: skip
    null, exact = node({"kind": None})
    assert isinstance(null, Leaf) and null.key == "{item}:i:kind:-" and exact
    union, exact = node({"kind": {"in": ["a", "b"]}})
    assert isinstance(union, Disj) and len(union.items) == 2 and exact


def test_range_bounds_are_exact_only_where_a_double_holds_the_value() -> None:
    small, exact = node({"qty": {"gt": 5}})
    assert (small.kind, small.key, small.low, small.high) == ("S", "{item}:z:qty", "(5.0", "+inf") and exact
    big, exact = node({"qty": {"gt": 2**53 + 1}})
    assert isinstance(big, Leaf) and big.low == repr(float(2**53)) and not exact, "widened, re-checked"
    price, exact = node({"price": {"lte": "0.1"}})
    assert isinstance(price, Leaf) and price.high == "0.1" and not exact
    ratio, exact = node({"ratio": {"lt": 0.5}})
    assert isinstance(ratio, Leaf) and ratio.high == "(0.5" and exact
    when, exact = node({"at": datetime(2024, 1, 1, tzinfo=UTC)})
    assert isinstance(when, Leaf) and not exact, "a naive twin at the same instant shares the score"
    assert node({"at": {"gte": "2024-01-01T00:00:00+00:00"}})[1]


def test_ranges_of_one_field_merge_and_nulls_are_the_complement_of_the_zset() -> None:
    merged, exact = node({"qty": {"gte": 2, "lt": 9}, "AND": [{"qty": {"gt": 3}}]})
    assert isinstance(merged, Leaf) and (merged.low, merged.high) == ("(3.0", "(9.0") and exact
    null, exact = node({"qty": None})
    assert isinstance(null, Negation) and null.item.kind == "M" and null.item.key == "{item}:z:qty" and exact
    assert source_of(null) == Everything(), "a complement lists nothing by itself"


def test_negation_complements_exact_tests_and_gives_up_on_inexact_ones() -> None:
    negated, exact = node({"kind": {"not": "a"}})
    assert isinstance(negated, Negation) and exact
    assert node({"NOT": {"memo": "x"}}) == (TRUE_TEST, False)
    assert node({"NOT": {"price": "1.5"}}) == (TRUE_TEST, False), "a superset's complement is no superset"
    demorgan, exact = node({"NOT": {"OR": [{"kind": "a"}, {"qty": 1}]}})
    assert isinstance(demorgan, Conj) and all(isinstance(i, Negation) for i in demorgan.items) and exact
    not_in, exact = node({"kind": {"not": {"in": ["a", "b"]}}})
    assert isinstance(not_in, Conj) and len(not_in.items) == 2 and exact


def test_lex_unique_and_id_predicates_have_their_own_lookups() -> None:
    prefix, exact = node({"title": {"startswith": "a:"}})
    assert (prefix.kind, prefix.low, prefix.high, prefix.text, prefix.field) == (
        "W", "[a%3A", "(a%3B", "a:", "title") and exact  # fmt: skip
    equal, exact = node({"title": "ab"})
    assert (equal.kind, equal.text, equal.low, equal.high) == ("Q", "ab\x00", "[ab\x00", "(ab\x01") and exact
    claim, exact = node({"sku": "S-1"})
    assert claim.kind == "C" and claim.key.startswith("{item}:u:sku:") and exact
    assert node({"id": {"gte": "01A"}})[0].kind == "X"
    assert (node({"id": {"gte": "01A"}})[0].low, node({"id": {"gte": "01A"}})[0].high) == ("[01A", "+")
    slot, exact = node({"id": {"in": [3, "4"]}}, SLOT)
    assert isinstance(slot, Disj) and [i.low for i in slot.items] == ["3.0", "4.0"] and exact  # type: ignore[union-attr]
    assert all(i.id_ordered for i in slot.items), "an int-id window of the id ZSET is in id order"  # type: ignore[union-attr]


def test_prefix_windows_end_just_past_the_prefix() -> None:
    assert after_prefix("ab") == "(ac"
    assert after_prefix("a\U0010ffff") == "(b"
    assert after_prefix("\U0010ffff") == "+"
    assert after_prefix("\ud7ff") == "(\ue000", "no surrogate can be a bound"
    assert after_prefix("") == "+"
    words = ["a", "ab", "abz", "ab\x00", "ac", "aa\U0010ffff", "ab\U0010ffff\U0010ffff", "b"]
    for prefix in ["a", "ab", "aa"]:
        bound = after_prefix(prefix)[1:].encode()
        inside = [w for w in words if prefix.encode() <= w.encode() < bound]
        assert inside == [w for w in words if w.startswith(prefix)], prefix


def test_unindexed_or_contains_leaves_an_inexact_superset() -> None:
    assert node({"memo": "x"}) == (TRUE_TEST, False)
    assert node({"title": {"contains": "x"}}) == (TRUE_TEST, False)
    narrowed, exact = node({"kind": "a", "memo": {"startswith": "x"}})
    assert isinstance(narrowed, Leaf) and not exact
    assert node({"OR": [{"kind": "a"}, {"memo": "x"}]}) == (TRUE_TEST, False)
    assert node({"kind": {"in": []}}) == (FALSE_TEST, True)
    assert node({"OR": [{"kind": {"in": []}}, {"AND": []}]}) == (TRUE_TEST, True)


def test_sources_list_the_smallest_part_of_an_and_and_every_part_of_an_or() -> None:
    both = source_of(node({"kind": "a", "qty": {"gt": 1}})[0])
    assert isinstance(both, Smallest) and len(both.items) == 2
    either = source_of(node({"OR": [{"kind": "a"}, {"sku": "x"}]})[0])
    assert isinstance(either, Combined) and {i.kind for i in either.items} == {"M", "C"}  # type: ignore[union-attr]
    assert source_of(node({"OR": [{"kind": "a"}, {"NOT": {"kind": "b"}}]})[0]) == Everything()
    assert source_of(node({"kind": {"in": []}})[0]) is None


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


def test_pages_walk_an_id_ordered_part_of_the_where_or_the_order_fields_window() -> None:
    by_id = plan({"kind": "a", "qty": {"gt": 1}, "sku": "x"}, take=50)
    assert [w.kind for w in by_id.walks] == ["M", "C"], "equality ZSETs and claims list ids in id order"
    assert by_id.window is None and not by_id.nulls
    by_qty = plan({"kind": "a", "qty": {"gte": 1, "lt": 5}}, {"qty": "desc"}, take=50)
    assert by_qty.window is not None and by_qty.window.key == "{item}:z:qty" and not by_qty.nulls
    assert plan({"kind": "a"}, {"qty": "asc"}).nulls, "records without a qty may match"
    only_nulls = plan({"qty": None}, {"qty": "asc"})
    assert only_nulls.nulls and not only_nulls.values


def test_explain_names_the_walk_the_tests_and_whether_it_scans() -> None:
    text = str(plan({"kind": "a", "qty": {"gte": 3}}, {"qty": "desc"}, take=50))
    assert "find Item: page" in text and "{item}:i:kind:=a" in text and "{item}:z:qty" in text
    assert "walks: qty >= 3 (ZSET {item}:z:qty [3.0, +inf]), by score" in text
    assert "order: qty desc, id desc (paged in Redis" in text and "round trips: 2" in text
    w3 = str(plan({"kind": "a"}, take=50))
    assert "walks: kind = 'a' (ZSET {item}:i:kind:=a), in id order" in w3
    assert "tested per id: nothing more" in w3 and "sorts the ids" not in w3
    assert "counted: its cardinality" in str(plan({"kind": "a"}, op="count"))
    assert "nothing is written" in text
    scan = plan({"memo": {"contains": "x"}}).explain()
    assert "scan (scans every record)" in scan and "filtered in Python: memo contains 'x'" in scan


def test_programs_name_only_keys_of_the_model_and_no_temporary_key() -> None:
    compiled = plan({"OR": [{"kind": "a"}, {"qty": {"gt": 1}}], "NOT": {"kind": "b"}}, take=3)
    assert all(key.startswith("{item}:") for key in compiled.keys)
    assert list(compiled.keys[:3]) == ["{item}:ids", "{item}:exp", "{item}:ids"]
    assert not any(":tmp:" in key for key in compiled.keys)
    assert compiled.args[:3] == ("page", "0", "{item}:r:")
    query = parse_query(ITEM, {"kind": "a"})
    assert build_plan(ITEM, query) is build_plan(ITEM, parse_query(ITEM, {"kind": "a"})), "plans are cached"


READ_ONLY_COMMANDS = {
    "EXISTS", "GET", "HGET", "HGETALL", "HMGET", "PTTL", "TIME", "ZCARD", "ZCOUNT", "ZLEXCOUNT",
    "ZMSCORE", "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZRANK", "ZREVRANGE", "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCORE",
}  # fmt: skip
SCRIPTS = Path(__file__).resolve().parent.parent / "redis_orm_async" / "_scripts"


@pytest.mark.parametrize("name", ["query.lua", "unique.lua", "count.lua", "keys.lua"])
def test_read_scripts_call_only_read_commands_named_literally(name: str) -> None:
    source = (SCRIPTS / name).read_text()
    calls = re.findall(r"redis\.p?call\(\s*([^,)]*)", source)
    named = re.findall(r"redis\.p?call\(\s*'([A-Z]+)'", source)
    assert len(named) == len(calls), "every command is a literal, so that this check sees it"
    assert set(named) <= READ_ONLY_COMMANDS, set(named) - READ_ONLY_COMMANDS


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
