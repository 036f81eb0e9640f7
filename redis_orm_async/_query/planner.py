"""Query planning: a where becomes a per-id test over index lookups, plus an ordered walk or the
cheapest source of candidate ids. Pure, so a plan is built once per query shape and ``explain``
costs no I/O.

No read creates a key. A comparison becomes a *leaf*: a lookup that decides one id in O(1) (its
score in an equality ZSET, its score in a range ZSET checked against the bounds, the id itself
compared with id bounds, a lex member ``text\\0id``, the stored text for ``startswith``, or the id
a unique claim holds). AND, OR and NOT combine leaves into the *test* that the read script
evaluates for each id it meets. A leaf is *exact* when it decides precisely what Python decides;
otherwise it is replaced by "true" (a superset) and Python narrows the rows (a field without an
index, ``contains``, a bound a double cannot hold). Every returned record is re-checked in Python
(``_query.match`` is the reference), so a plan only decides the cost, never the answer.

Each leaf's ids are also a window of one ZSET, so a test has a *source*: a leaf, the smallest of
an AND's parts (the script compares their cardinalities at run time) or the union of an OR's.

Strategies:

- ``page``: an exact where, ordered by the id or by a range-indexed field. The script walks one
  ordered ZSET: the id ZSET, or, ordered by id, the smallest equality ZSET (or id window) among
  the where's top-level AND parts, since equality ZSETs are scored like the id ZSET and so list
  their members in id order; ordered by a field, that field's range ZSET, windowed by the
  where's own range of it (records with no value follow in their own segment). Each member is
  tested, expired ones are skipped, and the page comes back with its score ties completed for an
  exact sort in Python. When the candidates are much fewer than the walk would visit, the script
  sorts the candidates instead. Two round trips whatever the page's depth.
- ``candidates``: the test narrows the ids but cannot decide every row, or the order has no
  index; the script lists the tested ids and Python reads, filters and sorts them.
- ``scan``: nothing narrows; the id ZSET is walked in batches (never KEYS).
- ``count`` / ``ids``: an exact where counted (or its ids listed, for bulk writes) in the script.
- ``lookup``: the where names its records' ids (``{"id": {"in": ids}}``, maybe AND more): they are
  read directly in one pipeline and checked in Python, with no index walk at all.
- ``empty``: the where can match nothing (``in: []``, ``OR: []``); no I/O at all.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeAlias

from .._model.codec import datetime_micros
from .._model.keys import escape
from .._model.state import LEX_SEPARATOR
from .parse import And, Compare, Not, OrderKey, Predicate, Query, columns

if TYPE_CHECKING:
    from .._model.schema import ModelMeta

EXACT_DOUBLE = 2**53

LeafKind = Literal["M", "S", "X", "P", "Q", "W", "C"]
"""``M`` member of a ZSET; ``S`` score within bounds; ``X`` id within lex bounds; ``P`` id
prefix; ``Q`` lex member ``text\\0id``; ``W`` stored text prefix (a lex window as source);
``C`` the id a unique claim holds."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One O(1) per-id lookup, and the ZSET window that lists the ids it accepts."""

    kind: LeafKind
    key: str
    label: str
    low: str = ""
    high: str = ""
    text: str = ""
    """``P``/``W``: the prefix the id or stored text must start with; ``Q``: the member head."""
    field: str = ""
    """``W``: the field whose stored text is read."""
    id_ordered: bool = False
    """Its window lists ids in id order (the id ZSET, or an equality ZSET scored like it)."""


@dataclass(frozen=True, slots=True)
class Negation:
    item: Leaf
    label: str = ""
    """How ``explain`` shows it, when "NOT <leaf>" would read badly."""


@dataclass(frozen=True, slots=True)
class Conj:
    items: tuple[Test, ...]


@dataclass(frozen=True, slots=True)
class Disj:
    items: tuple[Test, ...]


Test: TypeAlias = Leaf | Negation | Conj | Disj
TRUE_TEST: Test = Conj(())
FALSE_TEST: Test = Disj(())


@dataclass(frozen=True, slots=True)
class Everything:
    """Every id (the id ZSET): no part of the test lists its ids."""


@dataclass(frozen=True, slots=True)
class Smallest:
    """An AND's listable parts; the script lists the one with the fewest ids."""

    items: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class Combined:
    """An OR's parts, every one listable; the script lists each and drops repeats."""

    items: tuple[Source, ...]


Source: TypeAlias = Leaf | Smallest | Combined | Everything | None
"""``None``: nothing can match."""

Strategy = Literal["empty", "lookup", "page", "candidates", "scan", "count", "ids"]
Operation = Literal["find", "count", "ids"]
Arg = str | int | float


def _score_text(score: float) -> str:
    return repr(float(score))


def _score_exact(kind: str, text: str) -> bool:
    """True when no other stored value can share this value's double score."""
    if kind in ("float", "date"):
        return True
    if kind == "int":
        return abs(int(text)) < EXACT_DOUBLE
    if kind == "datetime":
        return abs(datetime_micros(datetime.fromisoformat(text))) < EXACT_DOUBLE
    return False


def _bound(text: str) -> tuple[float, bool]:
    """A ZSET score bound as (value, exclusive)."""
    return (float(text[1:]), True) if text.startswith("(") else (float(text), False)


def _tighter(a: str, b: str, low: bool) -> str:
    (va, xa), (vb, xb) = _bound(a), _bound(b)
    if va == vb:
        return a if xa or not xb else b
    return a if (va > vb) == low else b


def after_prefix(prefix: str) -> str:
    """The exclusive lex bound just past every string starting with ``prefix`` (``+``: none).

    UTF-8 orders bytes as code points, so the prefix with its last character incremented is
    the least string that no longer starts with it."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return "(" + "".join(chars) + chr(following)
    return "+"


Built: TypeAlias = tuple[Test, bool]


def _conj(parts: list[Built]) -> Built:
    exact = all(ok for _, ok in parts)
    items: list[Test] = []
    for test, _ in parts:
        if test == FALSE_TEST:
            return FALSE_TEST, True
        items.extend(test.items if isinstance(test, Conj) else (test,))
    items = _merge_ranges(items)
    return (items[0] if len(items) == 1 else Conj(tuple(items))), exact


def _disj(parts: list[Built]) -> Built:
    if any(test == TRUE_TEST and ok for test, ok in parts):
        return TRUE_TEST, True
    exact = all(ok for _, ok in parts)
    if any(test == TRUE_TEST for test, _ in parts):
        return TRUE_TEST, exact
    items: list[Test] = []
    for test, _ in parts:
        items.extend(test.items if isinstance(test, Disj) else (test,))
    items = list(dict.fromkeys(items))
    return (items[0] if len(items) == 1 else Disj(tuple(items))), exact


def _merge_ranges(items: list[Test]) -> list[Test]:
    """Score ranges of one ZSET in one AND become one range, so a page can walk it directly."""
    merged: dict[str, Leaf] = {}
    out: list[Test] = []
    for item in items:
        if not isinstance(item, Leaf) or item.kind != "S":
            if item not in out:
                out.append(item)
            continue
        seen = merged.get(item.key)
        if seen is None:
            merged[item.key] = item
            out.append(item)
            continue
        both = Leaf(
            "S", item.key, f"{seen.label} AND {item.label}", _tighter(seen.low, item.low, True),
            _tighter(seen.high, item.high, False), id_ordered=seen.id_ordered,
        )  # fmt: skip
        out[out.index(seen)] = merged[item.key] = both
    return out


def _negate(part: Built) -> Built:
    test, exact = part
    if not exact:
        return TRUE_TEST, False
    if isinstance(test, Leaf):
        return Negation(test), True
    if isinstance(test, Negation):
        return test.item, True
    negated = [_negate((item, True)) for item in test.items]
    return _disj(negated) if isinstance(test, Conj) else _conj(negated)


def build_test(meta: ModelMeta, predicate: Predicate, negated: bool = False) -> Built:
    """The per-id test answering ``predicate`` (negated if asked) and whether it is exact; an
    inexact test accepts a superset of the matching ids."""
    if isinstance(predicate, Not):
        return build_test(meta, predicate.item, not negated)
    if isinstance(predicate, Compare):
        part = _leaf(meta, predicate)
        return _negate(part) if negated else part
    parts = [build_test(meta, item, negated) for item in predicate.items]
    conjunction = isinstance(predicate, And) != negated
    return _conj(parts) if conjunction else _disj(parts)


def _shown(meta: ModelMeta, name: str, text: str) -> str:
    """Stored text as a reader expects it: quoted for text fields, bare for numbers and dates."""
    return repr(text) if columns(meta)[name].kind in ("text", "json", "enum") else text


def _equal_leaf(meta: ModelMeta, name: str, text: str | None) -> Built:
    keys = meta.keys
    shown = f"{name} = {_shown(meta, name, text)}" if text is not None else f"{name} is null"
    if name == "id":
        if text is None:
            return FALSE_TEST, True
        if meta.id_kind == "manual_int":
            score = _score_text(int(text))
            return Leaf("S", keys.ids(), f"{shown} (id ZSET)", score, score, id_ordered=True), True
        return Leaf("X", keys.ids(), f"{shown} (id ZSET)", "[" + text, "[" + text, id_ordered=True), True
    field_meta = meta.fields[name]
    codec = field_meta.codec
    if field_meta.index == "equality":
        token = None if text is None else codec.token(text)
        key = keys.equality(name, token)
        return Leaf("M", key, f"{shown} (ZSET {key})", id_ordered=True), True
    if field_meta.index == "range" and codec.score is not None:
        zset = keys.range(name)
        if text is None:
            has_value = Leaf("M", zset, f"{name} is not null (ZSET {zset})")
            return Negation(has_value, f"{name} is null (not in ZSET {zset})"), True
        score = _score_text(codec.score(text))
        exact = codec.kind in ("int", "float", "date") and _score_exact(codec.kind, text)
        return Leaf("S", zset, f"{shown} (ZSET {zset} score {score})", score, score), exact
    if text is not None and field_meta.lex:
        lex = keys.lex(name)
        head = escape(text) + LEX_SEPARATOR
        label = f"{shown} (lex ZSET {lex})"
        return Leaf("Q", lex, label, "[" + head, after_prefix(head), head), True
    if text is not None:
        for constraint in meta.uniques:
            if constraint.fields == (name,):
                claim = meta.claim_key(constraint, {name: text}, "")
                if claim is not None:
                    return Leaf("C", claim, f"{shown} (unique claim {claim})"), True
    return TRUE_TEST, False


_BOUNDS: dict[str, Callable[[str, bool], tuple[str, str]]] = {
    "gt": lambda s, exact: (("(" if exact else "") + s, "+inf"),
    "gte": lambda s, exact: (s, "+inf"),
    "lt": lambda s, exact: ("-inf", ("(" if exact else "") + s),
    "lte": lambda s, exact: ("-inf", s),
}
_LEX_BOUNDS: dict[str, Callable[[str], tuple[str, str]]] = {
    "gt": lambda v: ("(" + v, "+"),
    "gte": lambda v: ("[" + v, "+"),
    "lt": lambda v: ("-", "(" + v),
    "lte": lambda v: ("-", "[" + v),
}
_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _leaf(meta: ModelMeta, test: Compare) -> Built:
    name, op, value = test.field, test.op, test.value
    keys = meta.keys
    if op == "eq":
        return _equal_leaf(meta, name, value)
    if op == "in":
        return _disj([_equal_leaf(meta, name, text) for text in value])
    if op in _BOUNDS:
        shown = f"{name} {_SYMBOLS[op]} {_shown(meta, name, value)}"
        if name == "id" and meta.id_kind != "manual_int":
            low, high = _LEX_BOUNDS[op](value)
            return Leaf("X", keys.ids(), f"{shown} (id ZSET)", low, high, id_ordered=True), True
        kind = columns(meta)[name].kind
        if name == "id":
            score, zset = float(int(value)), keys.ids()
        else:
            codec = meta.fields[name].codec
            if meta.fields[name].index != "range" or codec.score is None:
                return TRUE_TEST, False
            score, zset = codec.score(value), keys.range(name)
        exact = _score_exact(kind, value)
        low, high = _BOUNDS[op](_score_text(score), exact)
        label = f"{shown} (ZSET {zset} [{low}, {high}])"
        return Leaf("S", zset, label, low, high, id_ordered=name == "id"), exact
    if op == "startswith":
        shown = f"{name} startswith {value!r}"
        if name == "id":
            low, high = "[" + value, after_prefix(value)
            return Leaf("P", keys.ids(), f"{shown} (id ZSET)", low, high, value, id_ordered=True), True
        if meta.fields[name].lex:
            lex, head = keys.lex(name), escape(value)
            label = f"{shown} (lex ZSET {lex}; stored text when tested per id)"
            return Leaf("W", lex, label, "[" + head, after_prefix(head), value, name), True
    return TRUE_TEST, False


def source_of(test: Test) -> Source:
    """Where the ids a test can accept are listed from; ``Everything`` if no part lists them."""
    if isinstance(test, Leaf):
        return test
    if isinstance(test, Negation):
        return Everything()
    parts = [source_of(item) for item in test.items]
    if isinstance(test, Conj):
        if any(part is None for part in parts):
            return None
        narrowing = [part for part in parts if not isinstance(part, Everything)]
        if not narrowing:
            return Everything()
        return narrowing[0] if len(narrowing) == 1 else Smallest(tuple(narrowing))
    if any(isinstance(part, Everything) for part in parts):
        return Everything()
    listed = [part for part in parts if part is not None]
    if not listed:
        return None
    return listed[0] if len(listed) == 1 else Combined(tuple(listed))


def _unindexed(meta: ModelMeta, predicate: Predicate) -> list[str]:
    """Readable descriptions of the comparisons no index answers exactly."""
    if isinstance(predicate, Compare):
        if _leaf(meta, predicate)[1]:
            return []
        return [f"{predicate.field} {predicate.op} {predicate.value!r}"]
    if isinstance(predicate, Not):
        return _unindexed(meta, predicate.item)
    return [text for item in predicate.items for text in _unindexed(meta, item)]


def _order_key(meta: ModelMeta, order: tuple[OrderKey, ...]) -> str | None:
    first = order[0].field
    if first == "id":
        return meta.keys.ids()
    if meta.fields[first].index == "range":
        return meta.keys.range(first)
    return None


def _injective(meta: ModelMeta, order: tuple[OrderKey, ...]) -> str:
    """Where one score means one sort value, a range ZSET's member order within a score (the id,
    for string ids) is already the exact order, and the page needs no tie completion."""
    first = order[0]
    if first.field == "id" or meta.id_kind == "manual_int":
        return "never"
    if order[1:] != (OrderKey("id", first.descending),):
        return "never"
    kind = meta.fields[first.field].codec.kind
    if kind in ("float", "date"):
        return "always"
    return "below53" if kind in ("int", "datetime") else "never"


def _conjuncts(test: Test) -> tuple[Test, ...]:
    return test.items if isinstance(test, Conj) else (test,)


@dataclass(frozen=True)
class Plan:
    """How one query will run; ``explain()`` (or ``str(plan)``) prints it."""

    model: str
    operation: Operation
    strategy: Strategy
    test: Test
    source: Source
    exact: bool
    order: tuple[OrderKey, ...]
    order_index: str | None
    take: int | None = None
    skip: int = 0
    cursor: str | None = None
    filtered_in_python: tuple[str, ...] = field(default=())
    walks: tuple[Leaf, ...] = ()
    """Ordered by id: the id-ordered top-level AND parts a page may walk (the smallest wins)."""
    window: Leaf | None = None
    """Ordered by a field: the where's own range of it, which the page walks directly."""
    nulls: bool = False
    """Ordered by a field: records without a value may match and follow in their own segment."""
    values: bool = True
    """Ordered by a field: records with a value may match (not so for ``field: None``)."""
    keys: tuple[str, ...] = ()
    args: tuple[Arg, ...] = ()
    """The read script's KEYS and ARGV (empty for strategies that run no script)."""
    ids: tuple[str, ...] = ()
    """``lookup``: the ids the where names, read directly."""

    @property
    def scans(self) -> bool:
        """True when no index narrows the records: the whole id ZSET is walked."""
        return self.strategy == "scan"

    @property
    def round_trips(self) -> str:
        return {
            "empty": "0",
            "lookup": "1 (one pipeline of record reads)",
            "page": "2 (script, then one pipeline of record reads)",
            "candidates": "2 (script, then pipelined record reads of every candidate)",
            "scan": "1 per batch of 500 ids",
            "count": "1 (script)",
            "ids": "1 (script)",
        }[self.strategy]

    def explain(self) -> str:
        scan_note = " (scans every record)" if self.scans else ""
        lines = [f"{self.operation} {self.model}: {self.strategy}{scan_note}"]
        if self.strategy == "page":
            lines.extend(self._walk_lines())
        elif self.strategy == "lookup":
            lines.append(f"  reads: the {len(self.ids)} named ids' records, each checked in Python")
        elif self.strategy != "empty":
            lines.append("  ids from: " + _render_source(self.source).replace("\n", "\n  "))
        if self.strategy not in ("empty", "lookup"):
            if self.test == TRUE_TEST:
                tested = "nothing"
            elif self.strategy == "page" and self._walk_decides():
                tested = "nothing more: every member of the walked ZSET matches"
            else:
                tested = _render_test(self.test)
            lines.append("  tested per id: " + tested.replace("\n", "\n  "))
            if self.strategy == "count" and self.test == TRUE_TEST:
                lines.append("  counted: the id ZSET's cardinality, less the due part of the expiry ZSET")
            elif self.strategy == "count" and self.covering:
                lines.append("  counted: its cardinality, less its members whose records are due to expire")
            lines.append("  expired records: skipped by their own expiry score; nothing is written")
            lines.append("  (the expired ids a read met are cleaned up after it, best effort)")
        lines.append(f"  exact from indexes: {'yes' if self.exact else 'no'}")
        if self.filtered_in_python:
            lines.append("  filtered in Python: " + "; ".join(self.filtered_in_python))
        if self.operation == "find":
            order = ", ".join(f"{k.field} {'desc' if k.descending else 'asc'}" for k in self.order)
            where = "paged in Redis" if self.strategy == "page" else "sorted in Python"
            lines.append(f"  order: {order} ({where}; nulls last asc, first desc)")
            lines.append(
                f"  take: {self.take if self.take is not None else 'all'}, skip: {self.skip}"
                + (f", after id {self.cursor!r}" if self.cursor is not None else "")
            )
        lines.append(f"  round trips: {self.round_trips}")
        return "\n".join(lines)

    @property
    def covering(self) -> bool:
        """A count answered by one leaf's cardinality (index membership alone decides it)."""
        return isinstance(self.test, Leaf) and self.source == self.test and self.test.kind != "W"

    def _main_walks(self) -> tuple[Leaf | None, ...]:
        """The leaves a page's main walk may list (None: a whole ZSET, which implies no test)."""
        if self.order[0].field == "id":
            return self.walks or (None,)
        return (self.window,)

    def _walk_decides(self) -> bool:
        """Whichever walk the script picks, its members all pass the test."""
        return all(walk is not None and self.test == walk for walk in self._main_walks())

    def _walk_lines(self) -> list[str]:
        ids_walk = f"the id ZSET {self.order_index if self.order[0].field == 'id' else ''}".strip()
        if len(self.walks) == 1:
            ids_walk = self.walks[0].label
        elif self.walks:
            ids_walk = "the smallest (by cardinality) of: " + "; ".join(w.label for w in self.walks)
        if self.order[0].field == "id":
            lines = [f"  walks: {ids_walk}, in id order"]
        elif not self.values:
            lines = ["  walks: no values (the where wants records without one)"]
        elif self.window is not None:
            lines = [f"  walks: {self.window.label}, by score"]
        else:
            lines = [f"  walks: {self.order_index}, by score"]
        if self.nulls:
            lines.append(f"  then records without a value: {ids_walk}, ids missing from {self.order_index}")
        if not isinstance(self.source, Everything) and not self._walk_decides():
            lines.append(
                "  or, when the candidates are fewer than that walk would visit, sorts the ids from: "
                + _render_source(self.source).replace("\n", "\n  ")
            )
        return lines

    def __str__(self) -> str:
        return self.explain()


def _render_test(test: Test, depth: int = 0) -> str:
    pad = "  " * depth
    if test == TRUE_TEST:
        return pad + "everything"
    if test == FALSE_TEST:
        return pad + "nothing"
    if isinstance(test, Leaf):
        return pad + test.label
    if isinstance(test, Negation):
        return pad + (test.label or "NOT " + test.item.label)
    title = "AND" if isinstance(test, Conj) else "OR"
    return "\n".join([pad + title, *(_render_test(item, depth + 1) for item in test.items)])


def _render_source(source: Source, depth: int = 0) -> str:
    pad = "  " * depth
    if source is None:
        return pad + "nothing"
    if isinstance(source, Everything):
        return pad + "all ids (id ZSET)"
    if isinstance(source, Leaf):
        return pad + source.label
    title = "the smallest of" if isinstance(source, Smallest) else "the union of"
    return "\n".join([pad + title, *(_render_source(item, depth + 1) for item in source.items)])


PLAN_CACHE = 256
"""Plans remembered per model: an application repeats a few query shapes with a few values."""
_PLANS: weakref.WeakKeyDictionary[ModelMeta, dict[tuple[Query, Operation], Plan]] = (
    weakref.WeakKeyDictionary()
)


def build_plan(meta: ModelMeta, query: Query, operation: Operation = "find", *, cached: bool = True) -> Plan:
    """Choose how to answer ``query``; pure, so ``explain`` costs nothing and a plan (immutable,
    a function of the parsed query alone) is built once and reused. ``cached=False`` for the
    one-off queries of a batch (a page of children per parent), which would only crowd out the
    shapes an application repeats."""
    if not cached:
        return _new_plan(meta, query, operation)
    plans = _PLANS.get(meta)
    if plans is None:
        plans = _PLANS[meta] = {}
    plan = plans.get((query, operation))
    if plan is None:
        if len(plans) >= PLAN_CACHE:
            plans.clear()  # cursors make endless distinct queries; the shapes in use come back at once
        plan = plans[(query, operation)] = _new_plan(meta, query, operation)
    return plan


def _new_plan(meta: ModelMeta, query: Query, operation: Operation) -> Plan:
    test, exact = build_test(meta, query.where)
    source = source_of(test)
    order_index = _order_key(meta, query.order)
    strategy: Strategy
    named = _named_ids(meta, source)
    if source is None or (operation == "find" and query.take == 0):
        strategy = "empty"
    elif named is not None:
        strategy = "lookup"
    elif exact and operation != "find":
        strategy = operation
    elif exact and order_index is not None:
        strategy = "page"
    elif test != TRUE_TEST:
        strategy = "candidates"
    else:
        strategy = "scan"
    walks: tuple[Leaf, ...] = ()
    window: Leaf | None = None
    nulls, values = False, True
    if strategy == "page":
        parts = _conjuncts(test)
        walks = tuple(p for p in parts if isinstance(p, Leaf) and (p.id_ordered or p.kind == "C"))
        if query.order[0].field != "id":
            assert order_index is not None
            window = next((p for p in parts if isinstance(p, Leaf) and p.kind == "S"
                           and p.key == order_index), None)  # fmt: skip
            nulls = not any(isinstance(p, Leaf) and p.key == order_index for p in parts)
            values = not any(isinstance(p, Negation) and p.item.kind == "M" and p.item.key == order_index
                             for p in parts)  # fmt: skip
    plan = Plan(
        model=meta.name,
        operation=operation,
        strategy=strategy,
        test=test,
        source=source,
        exact=exact,
        order=query.order,
        order_index=order_index,
        take=query.take,
        skip=query.skip,
        cursor=query.cursor,
        filtered_in_python=tuple(dict.fromkeys(_unindexed(meta, query.where))),
        walks=walks,
        window=window,
        nulls=nulls,
        values=values,
        ids=named if strategy == "lookup" and named is not None else (),
    )
    if strategy in ("page", "candidates", "count", "ids"):
        keys, args = compile_program(meta, plan)
        plan = replace(plan, keys=tuple(keys), args=tuple(args))
    return plan


LOOKUP_LIMIT = 10_000
"""The most ids a where may name and still be read directly (one pipeline of record reads)."""


def _named_ids(meta: ModelMeta, source: Source) -> tuple[str, ...] | None:
    """The ids a source lists when it is nothing but id equalities (``id in [...]``), or an AND
    one of whose parts is: reading them is one pipeline, where walking each would be a lookup per
    id inside the script."""
    if isinstance(source, Smallest):
        for item in source.items:
            found = _named_ids(meta, item)
            if found is not None:
                return found
        return None
    items = source.items if isinstance(source, Combined) else (source,)
    ids: list[str] = []
    for item in items:
        if not (isinstance(item, Leaf) and item.key == meta.keys.ids() and item.low == item.high):
            return None
        if item.kind == "X" and item.low.startswith("["):
            ids.append(item.low[1:])
        elif item.kind == "S" and meta.id_kind == "manual_int" and not item.low.startswith("("):
            ids.append(str(int(float(item.low))))
        else:
            return None
    unique = tuple(dict.fromkeys(ids))
    return unique if len(unique) <= LOOKUP_LIMIT else None


@dataclass
class _Program:
    """The script's KEYS (``[ids, expiry, order key, ...]``) and the leaves it numbers."""

    keys: list[str]
    leaves: list[Leaf] = field(default_factory=list)

    def key(self, name: str) -> int:
        if name not in self.keys:
            self.keys.append(name)
        return self.keys.index(name) + 1

    def leaf(self, leaf: Leaf) -> int:
        if leaf not in self.leaves:
            self.leaves.append(leaf)
        return self.leaves.index(leaf) + 1


def _test_tokens(program: _Program, test: Test, out: list[Arg]) -> None:
    if isinstance(test, Leaf):
        out.extend(("l", program.leaf(test)))
    elif isinstance(test, Negation):
        out.append("!")
        _test_tokens(program, test.item, out)
    else:
        out.extend(("&" if isinstance(test, Conj) else "|", len(test.items)))
        for item in test.items:
            _test_tokens(program, item, out)


def _source_tokens(program: _Program, source: Source, out: list[Arg]) -> None:
    if source is None:
        out.append("0")
    elif isinstance(source, Everything):
        out.append("*")
    elif isinstance(source, Leaf):
        out.extend(("l", program.leaf(source)))
    else:
        out.extend(("p" if isinstance(source, Smallest) else "u", len(source.items)))
        for item in source.items:
            _source_tokens(program, item, out)


def compile_program(meta: ModelMeta, plan: Plan) -> tuple[list[str], list[Arg]]:
    """The plan as KEYS and ARGV of the read script (``query.lua``), which documents the layout."""
    keys = meta.keys
    mode = "page" if plan.strategy == "page" else ("count" if plan.strategy == "count" else "ids")
    program = _Program(keys=[keys.ids(), keys.expiry(), plan.order_index or keys.ids()])
    test_tokens: list[Arg] = []
    _test_tokens(program, plan.test, test_tokens)
    source_tokens: list[Arg] = []
    _source_tokens(program, plan.source, source_tokens)
    tail: list[Arg] = []
    if mode == "page":
        first = plan.order[0]
        tail = [
            "id" if first.field == "id" else "field",
            "1" if first.descending else "0",
            "1" if first.field != "id" and plan.order[1:] != (OrderKey("id", first.descending),) else "0",
            plan.skip,
            -1 if plan.take is None else plan.take,
            plan.cursor or "",
            _injective(meta, plan.order),
            0 if plan.window is None else program.leaf(plan.window),
            ("1" if plan.nulls else "0") + ("1" if plan.values else "0"),
            len(plan.walks),
            *(program.leaf(walk) for walk in plan.walks),
        ]
    elif mode == "count":
        tail = ["1" if plan.covering else "0"]
    leaf_tokens: list[Arg] = [len(program.leaves)]
    for leaf in program.leaves:
        leaf_tokens.extend((leaf.kind, program.key(leaf.key), leaf.low, leaf.high, leaf.text, leaf.field))
    head = [mode, "1" if meta.id_kind == "manual_int" else "0", keys.record("")]
    return list(program.keys), [*head, *leaf_tokens, *test_tokens, *source_tokens, *tail]
