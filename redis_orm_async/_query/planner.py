"""Query planning: which index keys answer a predicate, and whether Redis can page the result.

Planning is pure. A predicate is pushed into negation normal form and each comparison becomes a
node over index keys (an equality SET, a score range of a range ZSET, a prefix of a lex ZSET, a
unique claim, or the id ZSET). AND and OR become intersections and unions, computed inside one
Lua script into temporary keys that carry the model's hash tag and a short TTL. A node is
*exact* when its ids are precisely the matching records; otherwise it is a superset that Python
narrows (a field without an index, ``contains``, or a score bound that a double cannot represent
exactly). Every returned record is re-checked in Python, so a plan only decides the cost, never
the answer.

Strategies:

- ``page``: an exact where and a first order key that is the id or a range-indexed field; the
  script walks the ordered ZSET and returns just the page (completed with its score ties), so a
  page costs two round trips (script, then one pipeline of record reads) whatever its position.
- ``candidates``: the indexes narrow the ids; every candidate is read, filtered and sorted.
- ``scan``: nothing narrows; the id ZSET is walked in batches (never KEYS).
- ``count`` / ``ids``: an exact where counted (or its ids listed, for bulk writes) inside the
  script, one round trip.
- ``empty``: the where can match nothing (``in: []``, ``OR: []``); no I/O at all.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeAlias

from .._model.codec import datetime_micros
from .._model.keys import escape
from .._model.state import LEX_SEPARATOR
from .parse import And, Compare, Not, OrderKey, Predicate, Query, columns

if TYPE_CHECKING:
    from .._model.schema import ModelMeta

EXACT_DOUBLE = 2**53


@dataclass(frozen=True, slots=True)
class AllIds:
    """Every id of the model (the id ZSET)."""


@dataclass(frozen=True, slots=True)
class NoIds:
    """Nothing can match."""


@dataclass(frozen=True, slots=True)
class Members:
    """The members of one index key: an equality SET, or a whole range ZSET used as a set."""

    key: str
    label: str


@dataclass(frozen=True, slots=True)
class ScoreRange:
    key: str
    low: str
    high: str
    label: str


@dataclass(frozen=True, slots=True)
class LexRange:
    """A lexicographic range of the id ZSET of a string-id model (all scores are 0)."""

    key: str
    low: str
    high: str
    label: str


@dataclass(frozen=True, slots=True)
class LexPrefix:
    """Members starting with ``prefix``; ``strip`` drops the ``text\\0`` part of lex members."""

    key: str
    prefix: str
    strip: bool
    label: str


@dataclass(frozen=True, slots=True)
class ClaimOf:
    """The id a unique claim key points to."""

    key: str
    label: str


@dataclass(frozen=True, slots=True)
class Inter:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Union:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Minus:
    left: Node
    right: Node


Node: TypeAlias = (
    AllIds | NoIds | Members | ScoreRange | LexRange | LexPrefix | ClaimOf | Inter | Union | Minus
)
Strategy = Literal["empty", "page", "candidates", "scan", "count", "ids"]
Operation = Literal["find", "count", "ids"]


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


def _merge_ranges(nodes: list[Node]) -> list[Node]:
    """Intersected score ranges of one ZSET become one range, so a page can walk it directly."""
    merged: dict[str, ScoreRange] = {}
    out: list[Node] = []
    for node in nodes:
        if not isinstance(node, ScoreRange):
            out.append(node)
            continue
        seen = merged.get(node.key)
        if seen is None:
            merged[node.key] = node
            out.append(node)
            continue
        both = ScoreRange(
            node.key, _tighter(seen.low, node.low, True), _tighter(seen.high, node.high, False),
            f"{seen.label} AND {node.label}",
        )  # fmt: skip
        out[out.index(seen)] = merged[node.key] = both
    return out


def _inter(parts: list[tuple[Node, bool]]) -> tuple[Node, bool]:
    if any(isinstance(node, NoIds) for node, _ in parts):
        return NoIds(), True
    exact = all(ok for _, ok in parts)
    nodes = _merge_ranges([node for node, _ in parts if not isinstance(node, AllIds)])
    if not nodes:
        return AllIds(), exact
    return (nodes[0] if len(nodes) == 1 else Inter(tuple(nodes))), exact


def _union(parts: list[tuple[Node, bool]]) -> tuple[Node, bool]:
    if any(isinstance(node, AllIds) and ok for node, ok in parts):
        return AllIds(), True
    exact = all(ok for _, ok in parts)
    if any(isinstance(node, AllIds) for node, _ in parts):
        return AllIds(), exact
    nodes = [node for node, _ in parts if not isinstance(node, NoIds)]
    if not nodes:
        return NoIds(), exact
    return (nodes[0] if len(nodes) == 1 else Union(tuple(nodes))), exact


def _negate(part: tuple[Node, bool]) -> tuple[Node, bool]:
    node, exact = part
    if not exact:
        return AllIds(), False
    if isinstance(node, NoIds):
        return AllIds(), True
    if isinstance(node, AllIds):
        return NoIds(), True
    return Minus(AllIds(), node), True


def index_node(meta: ModelMeta, predicate: Predicate, negated: bool = False) -> tuple[Node, bool]:
    """The index node answering ``predicate`` (negated if asked) and whether it is exact."""
    if isinstance(predicate, Not):
        return index_node(meta, predicate.item, not negated)
    if isinstance(predicate, Compare):
        part = _leaf(meta, predicate)
        return _negate(part) if negated else part
    parts = [index_node(meta, item, negated) for item in predicate.items]
    conjunction = isinstance(predicate, And) != negated
    return _inter(parts) if conjunction else _union(parts)


def _shown(meta: ModelMeta, name: str, text: str) -> str:
    """Stored text as a reader expects it: quoted for text fields, bare for numbers and dates."""
    return repr(text) if columns(meta)[name].kind in ("text", "json", "enum") else text


def _equal_node(meta: ModelMeta, name: str, text: str | None) -> tuple[Node, bool]:
    keys = meta.keys
    shown = f"{name} = {_shown(meta, name, text)}" if text is not None else f"{name} is null"
    if name == "id":
        if text is None:
            return NoIds(), True
        if meta.id_kind == "manual_int":
            score = _score_text(int(text))
            return ScoreRange(keys.ids(), score, score, f"{shown} (id ZSET)"), True
        return LexRange(keys.ids(), "[" + text, "[" + text, f"{shown} (id ZSET)"), True
    field_meta = meta.fields[name]
    codec = field_meta.codec
    if field_meta.index == "equality":
        token = None if text is None else codec.token(text)
        key = keys.equality(name, token)
        return Members(key, f"{shown} (SET {key})"), True
    if field_meta.index == "range" and codec.score is not None:
        zset = keys.range(name)
        if text is None:
            return Minus(AllIds(), Members(zset, f"{name} is not null (ZSET {zset})")), True
        score = _score_text(codec.score(text))
        exact = codec.kind in ("int", "float", "date") and _score_exact(codec.kind, text)
        return ScoreRange(zset, score, score, f"{shown} (ZSET {zset} score {score})"), exact
    if text is not None and field_meta.lex:
        lex = keys.lex(name)
        return LexPrefix(lex, escape(text) + LEX_SEPARATOR, True, f"{shown} (lex ZSET {lex})"), True
    if text is not None:
        for constraint in meta.uniques:
            if constraint.fields == (name,):
                claim = meta.claim_key(constraint, {name: text}, "")
                if claim is not None:
                    return ClaimOf(claim, f"{shown} (unique claim {claim})"), True
    return AllIds(), False


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


def _leaf(meta: ModelMeta, test: Compare) -> tuple[Node, bool]:
    name, op, value = test.field, test.op, test.value
    keys = meta.keys
    if op == "eq":
        return _equal_node(meta, name, value)
    if op == "in":
        return _union([_equal_node(meta, name, text) for text in value])
    if op in _BOUNDS:
        shown = f"{name} {_SYMBOLS[op]} {_shown(meta, name, value)}"
        if name == "id" and meta.id_kind != "manual_int":
            low, high = _LEX_BOUNDS[op](value)
            return LexRange(keys.ids(), low, high, f"{shown} (id ZSET)"), True
        kind = columns(meta)[name].kind
        if name == "id":
            score, zset = float(int(value)), keys.ids()
        else:
            codec = meta.fields[name].codec
            if meta.fields[name].index != "range" or codec.score is None:
                return AllIds(), False
            score, zset = codec.score(value), keys.range(name)
        exact = _score_exact(kind, value)
        low, high = _BOUNDS[op](_score_text(score), exact)
        return ScoreRange(zset, low, high, f"{shown} (ZSET {zset} [{low}, {high}])"), exact
    if op == "startswith":
        shown = f"{name} startswith {value!r}"
        if name == "id":
            return LexPrefix(keys.ids(), value, False, f"{shown} (id ZSET)"), True
        if meta.fields[name].lex:
            lex = keys.lex(name)
            return LexPrefix(lex, escape(value), True, f"{shown} (lex ZSET {lex})"), True
    return AllIds(), False


def _unindexed(meta: ModelMeta, predicate: Predicate) -> list[str]:
    """Readable descriptions of the comparisons no index answers exactly."""
    if isinstance(predicate, Compare):
        if _leaf(meta, predicate)[1]:
            return []
        return [f"{predicate.field} {predicate.op} {predicate.value!r}"]
    if isinstance(predicate, Not):
        return _unindexed(meta, predicate.item)
    return [text for item in predicate.items for text in _unindexed(meta, item)]


def _order_index(meta: ModelMeta, order: tuple[OrderKey, ...]) -> str | None:
    first = order[0].field
    if first == "id":
        return meta.keys.ids()
    if meta.fields[first].index == "range":
        return meta.keys.range(first)
    return None


@dataclass(frozen=True)
class Plan:
    """How one query will run; ``explain()`` (or ``str(plan)``) prints it."""

    model: str
    operation: Operation
    strategy: Strategy
    source: Node
    exact: bool
    order: tuple[OrderKey, ...]
    order_index: str | None
    take: int | None = None
    skip: int = 0
    cursor: str | None = None
    filtered_in_python: tuple[str, ...] = field(default=())

    @property
    def scans(self) -> bool:
        """True when no index narrows the records: the whole id ZSET is walked."""
        return self.strategy == "scan"

    @property
    def round_trips(self) -> str:
        return {
            "empty": "0",
            "page": "2 (script, then one pipeline of record reads)",
            "candidates": "2 (script, then pipelined record reads of every candidate)",
            "scan": "1 per batch of 500 ids",
            "count": "1 (script)",
            "ids": "1 (script)",
        }[self.strategy]

    def explain(self) -> str:
        order = ", ".join(f"{k.field} {'desc' if k.descending else 'asc'}" for k in self.order)
        scan_note = " (scans every record)" if self.scans else ""
        lines = [
            f"{self.operation} {self.model}: {self.strategy}{scan_note}",
            "  ids from: " + _render(self.source).replace("\n", "\n  "),
            f"  exact from indexes: {'yes' if self.exact else 'no'}",
        ]
        if self.filtered_in_python:
            lines.append("  filtered in Python: " + "; ".join(self.filtered_in_python))
        if self.operation == "find":
            where = f"paged in Redis on {self.order_index}" if self.strategy == "page" else "sorted in Python"
            lines.append(f"  order: {order} ({where}; nulls last asc, first desc)")
            lines.append(
                f"  take: {self.take if self.take is not None else 'all'}, skip: {self.skip}"
                + (f", after id {self.cursor!r}" if self.cursor is not None else "")
            )
        lines.append(f"  round trips: {self.round_trips}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()


def _render(node: Node, depth: int = 0) -> str:
    pad = "  " * depth
    if isinstance(node, AllIds):
        return pad + "all ids (id ZSET)"
    if isinstance(node, NoIds):
        return pad + "nothing"
    if isinstance(node, Inter | Union):
        title = "AND" if isinstance(node, Inter) else "OR"
        return "\n".join([pad + title, *(_render(item, depth + 1) for item in node.items)])
    if isinstance(node, Minus):
        return "\n".join([pad + "all ids EXCEPT", _render(node.right, depth + 1)])
    return pad + node.label


PLAN_CACHE = 256
"""Plans remembered per model: an application repeats a few query shapes with a few values."""
_PLANS: weakref.WeakKeyDictionary[ModelMeta, dict[tuple[Query, Operation], Plan]] = (
    weakref.WeakKeyDictionary()
)


def build_plan(meta: ModelMeta, query: Query, operation: Operation = "find") -> Plan:
    """Choose how to answer ``query``; pure, so ``explain`` costs nothing and a plan (immutable,
    a function of the parsed query alone) is built once and reused."""
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
    source, exact = index_node(meta, query.where)
    order_index = _order_index(meta, query.order)
    strategy: Strategy
    if isinstance(source, NoIds) or (operation == "find" and query.take == 0):
        strategy = "empty"
    elif exact and operation != "find":
        strategy = operation
    elif exact and order_index is not None:
        strategy = "page"
    elif not isinstance(source, AllIds):
        strategy = "candidates"
    else:
        strategy = "scan"
    return Plan(
        model=meta.name,
        operation=operation,
        strategy=strategy,
        source=source,
        exact=exact,
        order=query.order,
        order_index=order_index,
        take=query.take,
        skip=query.skip,
        cursor=query.cursor,
        filtered_in_python=tuple(dict.fromkeys(_unindexed(meta, query.where))),
    )


Arg = str | int | float


@dataclass
class Program:
    """A plan's index node as the postfix program ``QUERY_SCRIPT`` runs; keys are 1-based."""

    keys: list[str]
    tokens: list[Arg]
    temps: int = 0
    _temp_tokens: list[int] = field(default_factory=list)

    def key(self, name: str) -> int:
        if name not in self.keys:
            self.keys.append(name)
        return self.keys.index(name) + 1

    def temp(self) -> int:
        """A placeholder for the next temporary key, resolved by ``finish``."""
        self.temps += 1
        self._temp_tokens.append(len(self.tokens))
        return -self.temps

    def finish(self, temporary: Callable[[int], str], extra_temps: int) -> tuple[list[str], list[Arg]]:
        base = len(self.keys)
        tokens = list(self.tokens)
        for position in self._temp_tokens:
            tokens[position] = base + (-int(tokens[position]))
        temps = [temporary(n) for n in range(self.temps + extra_temps)]
        return [*self.keys, *temps], tokens


def compile_program(meta: ModelMeta, node: Node, order_key: str) -> Program:
    """KEYS start ``[ids, expiry, order_key]``; index keys follow, temporaries come last."""
    program = Program(keys=[meta.keys.ids(), meta.keys.expiry(), order_key], tokens=[])
    _emit(program, node)
    return program


def _emit_temp(program: Program) -> None:
    position = program.temp()
    program.tokens.append(position)


def _emit(program: Program, node: Node) -> None:
    tokens = program.tokens
    if isinstance(node, AllIds):
        tokens.append("A")
    elif isinstance(node, NoIds):
        tokens.append("K")
        _emit_temp(program)
    elif isinstance(node, Members):
        tokens.extend(("K", program.key(node.key)))
    elif isinstance(node, ScoreRange | LexRange):
        op = "S" if isinstance(node, ScoreRange) else "X"
        tokens.extend((op, program.key(node.key), node.low, node.high))
        _emit_temp(program)
    elif isinstance(node, LexPrefix):
        tokens.extend(("P", program.key(node.key), node.prefix, "1" if node.strip else "0"))
        _emit_temp(program)
    elif isinstance(node, ClaimOf):
        tokens.extend(("C", program.key(node.key)))
        _emit_temp(program)
    elif isinstance(node, Inter | Union):
        for item in node.items:
            _emit(program, item)
        tokens.extend(("I" if isinstance(node, Inter) else "U", len(node.items)))
        _emit_temp(program)
    else:
        _emit(program, node.left)
        _emit(program, node.right)
        tokens.append("D")
        _emit_temp(program)
