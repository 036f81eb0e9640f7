"""The reference semantics of a read in Python: a row matcher, the exact order, and paging."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from .._model.schema import ModelMeta
from .parse import (
    RANGE_OPS,
    And,
    Column,
    Compare,
    Not,
    Or,
    OrderKey,
    Predicate,
    Query,
    Row,
    _text_key,
    columns,
)

Matcher: TypeAlias = Callable[[Row], bool]


_RANGE_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _always(row: Row) -> bool:
    return True


def _never(row: Row) -> bool:
    return False


def _compare_matcher(col: Column, test: Compare) -> Matcher:
    name, op, value = col.name, test.op, test.value
    if op in ("eq", "in"):
        wanted = value if op == "in" else (value,)
        null = None in wanted
        tokens = frozenset(col.token(text) for text in wanted if text is not None)

        def equal(row: Row) -> bool:
            text = row.get(name)
            return null if text is None else col.token(text) in tokens

        return equal
    if op == "contains":
        return lambda row: (text := row.get(name)) is not None and value in text
    if op == "startswith":
        return lambda row: (text := row.get(name)) is not None and text.startswith(value)
    return _range_matcher(col, [test])


def _range_matcher(col: Column, tests: Sequence[Compare]) -> Matcher:
    """Every range test of one field at once, so a row's text is read and converted only once."""
    name, sort_key = col.name, col.sort_key
    assert sort_key is not None
    checks = [(_RANGE_TESTS[test.op], sort_key(test.value)) for test in tests]

    def ranged(row: Row) -> bool:
        text = row.get(name)
        if text is None:
            return False
        key = sort_key(text)
        if key is None:
            return False
        # a loop, not all(): a generator would cost a frame per row
        for compare, bound in checks:  # noqa: SIM110
            if not compare(key, bound):
                return False
        return True

    return ranged


def _conjunction_parts(meta: ModelMeta, items: Sequence[Predicate]) -> list[Matcher]:
    """The tests of an AND, its range tests of one field merged at the first one's place."""
    cols = columns(meta)
    slots: list[Predicate | list[Compare]] = []
    ranges: dict[str, list[Compare]] = {}
    for item in items:
        if isinstance(item, Compare) and item.op in RANGE_OPS:
            group = ranges.get(item.field)
            if group is None:
                group = ranges[item.field] = []
                slots.append(group)
            group.append(item)
        else:
            slots.append(item)
    return [
        _range_matcher(cols[slot[0].field], slot) if isinstance(slot, list) else matcher(meta, slot)
        for slot in slots
    ]


def matcher(meta: ModelMeta, predicate: Predicate) -> Matcher:
    """Compile a predicate into a test of one stored row."""
    if isinstance(predicate, Compare):
        return _compare_matcher(columns(meta)[predicate.field], predicate)
    if isinstance(predicate, Not):
        inner = matcher(meta, predicate.item)
        return lambda row: not inner(row)
    conjunction = isinstance(predicate, And)
    if conjunction:
        parts = _conjunction_parts(meta, predicate.items)
    else:
        parts = [matcher(meta, item) for item in predicate.items]
    if not parts:
        return _always if conjunction else _never
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        if conjunction:
            return lambda row: first(row) and second(row)
        return lambda row: first(row) or second(row)
    if conjunction:
        return lambda row: all(part(row) for part in parts)
    return lambda row: any(part(row) for part in parts)


def sort_rows(meta: ModelMeta, rows: Iterable[Row], order: Sequence[OrderKey]) -> list[Row]:
    """Sort rows by ``order``: nulls last ascending, first descending; stable multi-key sort.

    When every key runs in one direction this is one sort on a composite key, which costs one
    comparison per row for rows that Redis already returned in order."""
    cols = columns(meta)
    keys = [_row_key(cols[key.field]) for key in order]
    descending = order[0].descending
    if all(key.descending == descending for key in order):
        if len(keys) == 1:
            return sorted(rows, key=keys[0], reverse=descending)
        if len(keys) == 2 and order[1].field == "id" and keys[1] is _ID_TEXT:
            return sorted(rows, key=_then_id(cols[order[0].field]), reverse=descending)
        return sorted(rows, key=lambda row: tuple(key(row) for key in keys), reverse=descending)
    result = list(rows)
    for key, row_key in zip(reversed(order), reversed(keys), strict=True):
        result.sort(key=row_key, reverse=key.descending)
    return result


_ID_TEXT = operator.itemgetter("id")


def _row_key(col: Column) -> Callable[[Row], Any]:
    """A column's sort key over rows; every row has its id, so the id needs no null handling."""
    sort_key = col.sort_key
    assert sort_key is not None
    if col.name == "id":
        return _ID_TEXT if sort_key is _text_key else lambda row: sort_key(row["id"])
    return _null_aware(col.name, sort_key)


def _then_id(col: Column) -> Callable[[Row], tuple[bool, Any, str]]:
    """``(_null_aware key, text id)`` flattened into one tuple: the usual order, one call per row."""
    name, sort_key = col.name, col.sort_key
    assert sort_key is not None

    def key(row: Row) -> tuple[bool, Any, str]:
        text = row.get(name)
        value = None if text is None else sort_key(text)
        return (True, None, row["id"]) if value is None else (False, value, row["id"])

    return key


def _null_aware(name: str, sort_key: Callable[[str], Any]) -> Callable[[Row], tuple[bool, Any]]:
    def key(row: Row) -> tuple[bool, Any]:
        text = row.get(name)
        value = None if text is None else sort_key(text)
        return (True, None) if value is None else (False, value)

    return key


def page(meta: ModelMeta, rows: Iterable[Row], query: Query, cursor_row: Row | None = None) -> list[Row]:
    """Filter, sort and slice rows exactly as ``find_many`` answers (the reference semantics)."""
    test = matcher(meta, query.where)
    matching = [row for row in rows if test(row)]
    if cursor_row is not None:
        ordered = sort_rows(meta, [*[r for r in matching if r["id"] != cursor_row["id"]], cursor_row],
                            query.order)  # fmt: skip
        position = next(i for i, row in enumerate(ordered) if row is cursor_row)
        matching = ordered[position + 1 :]
    else:
        matching = sort_rows(meta, matching, query.order)
    end = None if query.take is None else query.skip + query.take
    return matching[query.skip : end]


def after_row(meta: ModelMeta, order: Sequence[OrderKey], row: Row) -> Predicate:
    """The rows strictly after ``row`` in ``order`` (which ends with the id), as a predicate: what
    a cursor means, built from the row's own stored values, so that it holds when the row itself
    is gone. "Equal" is equal in the order (a score range of one value), as ``sort_rows`` sees it."""
    cols = columns(meta)
    alternatives: list[Predicate] = []
    ties: list[Predicate] = []
    for key in order:
        text = row.get(key.field)
        sort_key = cols[key.field].sort_key
        if text is not None and sort_key is not None and sort_key(text) is None:
            text = None  # a NaN sorts as null
        if text is None:
            later: Predicate = Not(Compare(key.field, "eq", None)) if key.descending else Or(())
            same: Predicate = Compare(key.field, "eq", None)
        else:
            beyond = Compare(key.field, "lt" if key.descending else "gt", text)
            later = beyond if key.descending else Or((beyond, Compare(key.field, "eq", None)))
            same = And((Compare(key.field, "gte", text), Compare(key.field, "lte", text)))
        alternatives.append(And((*ties, later)))
        ties.append(same)
    return Or(tuple(alternatives))
