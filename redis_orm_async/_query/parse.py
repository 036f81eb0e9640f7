"""Queries as data: ``where`` parsed into a small predicate tree, ``order_by`` into sort keys.

Everything here is pure and runs before any I/O, so a bad query fails with a ``QueryError`` that
names the field and the operator without touching the server. The same module evaluates the
predicates and the ordering in Python over stored text; the planner narrows candidates with
indexes, and these functions give the exact answer (they are also what the tests compare Redis
against).

Semantics, identical in every code path:

- a comparison reads the stored text of a field; a missing field is null;
- ``eq``/``in`` compare canonical tokens (so ``Decimal("1.0")`` equals ``Decimal("1.00")``, aware
  datetimes compare by instant, JSON compares deeply); ``eq: None`` matches null;
- ``gt``/``gte``/``lt``/``lte``/``contains``/``startswith`` never match null;
- ``not: v`` and ``NOT`` are plain negation, so ``{"age": {"not": 5}}`` matches a null age;
- ordering puts nulls last ascending and first descending (as PostgreSQL does), and ties are
  broken by the id in the direction of the last order key (``{"age": "desc"}`` means age
  descending, then id descending; no order_by means id ascending), so every order is total and
  stable, and a cursor or an index walk sees one consistent direction.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._errors import QueryError, ValidationError
from .._model import expressions as expr
from .._model.codec import datetime_micros, has_surrogate, preview
from .._model.schema import MAX_SAFE_INT_ID

if TYPE_CHECKING:
    from .._model.schema import ModelMeta

CompareOp = Literal["eq", "in", "gt", "gte", "lt", "lte", "contains", "startswith"]
RANGE_OPS: frozenset[str] = frozenset({"gt", "gte", "lt", "lte"})
TEXT_OPS: frozenset[str] = frozenset({"contains", "startswith"})
OPERATORS: tuple[str, ...] = ("eq", "in", "not", "gt", "gte", "lt", "lte", "contains", "startswith")
RANGE_KINDS: frozenset[str] = frozenset({"int", "float", "decimal", "datetime", "date", "text"})

OrderBy: TypeAlias = Mapping[str, str] | expr.Order | Sequence[Mapping[str, str] | expr.Order]
"""``{"age": "desc"}``, ``[{"age": "desc"}, {"name": "asc"}]``, ``desc(User.age)`` or a list."""
Where: TypeAlias = Mapping[str, Any] | expr.Condition | bool
"""A dict-form where, or a field expression (a checker reads ``User.age > 1`` as ``bool``)."""
Row: TypeAlias = Mapping[str, str]
"""A record as stored: field name to stored text, always with ``"id"``; absent means null."""


@dataclass(frozen=True, slots=True)
class Compare:
    """One field test. ``value`` is stored text (a tuple of them for ``in``; ``None`` is null),
    except for ``contains``/``startswith``, whose value is the plain substring."""

    field: str
    op: CompareOp
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Predicate


Predicate: TypeAlias = Compare | And | Or | Not
TRUE: Predicate = And(())
FALSE: Predicate = Or(())


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed read: ``order`` always ends with the id (the tie-break, in the last key's direction)."""

    where: Predicate = TRUE
    order: tuple[OrderKey, ...] = (OrderKey("id"),)
    take: int | None = None
    skip: int = 0
    cursor: str | None = None

    @property
    def fields(self) -> frozenset[str]:
        """Every field the where and the order read, which a projection must still fetch."""
        return predicate_fields(self.where) | {key.field for key in self.order}


@dataclass(frozen=True, slots=True)
class Column:
    """How one queryable field (the id included) is normalized, compared and ordered."""

    name: str
    kind: str
    nullable: bool
    token: Callable[[str], str]
    sort_key: Callable[[str], Any] | None
    to_text: Callable[[Any], str]
    range_text: Callable[[Any], str]

    @property
    def orderable(self) -> bool:
        return self.sort_key is not None


def _float_key(text: str) -> float | None:
    number = float(text)
    return None if math.isnan(number) else number


def _decimal_key(text: str) -> Decimal | None:
    number = Decimal(text)
    return None if number.is_nan() else number


def _datetime_key(text: str) -> int:
    return datetime_micros(datetime.fromisoformat(text))


def _date_key(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def _bool_key(text: str) -> bool:
    return text == "true"


def _text_key(text: str) -> str:
    return text


_SORT_KEYS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": _float_key,
    "decimal": _decimal_key,
    "datetime": _datetime_key,
    "date": _date_key,
    "text": _text_key,
    "bool": _bool_key,
}


def _enum_key(meta: ModelMeta, name: str) -> Callable[[str], int]:
    """Enums order by declaration; an unknown stored text sorts after every member."""
    field = meta.fields[name]
    members = list(getattr(field.annotation, "__members__", {}).values())
    position = {field.codec.encode(member): index for index, member in enumerate(members)}
    return lambda text: position.get(text, len(position))


_COLUMNS: weakref.WeakKeyDictionary[ModelMeta, dict[str, Column]] = weakref.WeakKeyDictionary()


def columns(meta: ModelMeta) -> dict[str, Column]:
    """The queryable fields of a model, the id first (built once per model meta)."""
    found = _COLUMNS.get(meta)
    if found is None:
        found = _COLUMNS[meta] = _build_columns(meta)
    return found


def _build_columns(meta: ModelMeta) -> dict[str, Column]:
    if meta.id_kind == "manual_int":

        def int_id(value: Any) -> str:
            """A range bound on an int id; past +/-2**53, where no id is, it is clamped there."""
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValidationError(f"{meta.name}.id must be an int, got {type(value).__name__}")
            number = int(value)
            if abs(number) > MAX_SAFE_INT_ID:
                number = MAX_SAFE_INT_ID + 1 if number > 0 else -MAX_SAFE_INT_ID - 1
            return str(number)

        id_column = Column("id", "int", False, _text_key, int, meta.id_text, int_id)
    else:
        id_column = Column("id", "text", False, _text_key, _text_key, meta.id_text, _str_value)
    out = {"id": id_column}
    for name, field in meta.fields.items():
        kind = field.codec.kind
        sort_key = _enum_key(meta, name) if kind == "enum" else _SORT_KEYS.get(kind)
        text_of = _field_text(field.text_of)
        range_text = _str_value if kind == "text" else text_of
        out[name] = Column(name, kind, field.nullable, field.codec.token, sort_key, text_of, range_text)
    return out


def _str_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"expected a str, got {type(value).__name__}")
    if has_surrogate(value):
        raise ValidationError("text holding a lone surrogate cannot be queried (it has no UTF-8 encoding)")
    return value


def _field_text(text_of: Callable[[Any], str | None]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = text_of(value)
        assert text is not None
        return text

    return convert


def column(meta: ModelMeta, name: str, operator: str | None = None) -> Column:
    """The column a caller names: by attribute (the parsed query, like the engine, names it by
    its stored name)."""
    field = meta.field(name)
    if field is not None:
        found = columns(meta).get(field.name)
    else:
        found = columns(meta).get("id") if name == "id" else None
    if found is None:
        what = "relation" if name in meta.relations else "field"
        hint = "; filter relations by loading them with include" if what == "relation" else ""
        raise QueryError(
            f"{meta.name} has no queryable field {preview(name)}{hint or meta.field_hint(name)}",
            meta={"model": meta.name, "field": name, "operator": operator},
        )
    return found


def _error(meta: ModelMeta, name: str, operator: str, message: str) -> QueryError:
    return QueryError(
        f"{meta.name}.{name} {operator}: {message}",
        meta={"model": meta.name, "field": name, "operator": operator},
    )


def _normalize(meta: ModelMeta, col: Column, operator: str, value: Any, *, ranged: bool = False) -> str:
    """Validate a caller's value through the field's type and return its stored text."""
    try:
        text = (col.range_text if ranged else col.to_text)(value)
    except (ValidationError, ValueError, TypeError, OverflowError) as exc:
        message = exc.message if isinstance(exc, ValidationError) else type(exc).__name__
        raise _error(meta, col.name, operator, f"bad value {preview(value)}: {message}") from exc
    if col.kind in ("float", "decimal") and col.sort_key is not None and col.sort_key(text) is None:
        raise _error(meta, col.name, operator, "NaN cannot be queried")
    return text


def _eq_text(meta: ModelMeta, col: Column, operator: str, value: Any) -> str | None:
    return None if value is None else _normalize(meta, col, operator, value)


def _is_operator_object(col: Column, value: Any) -> bool:
    """A mapping is an operator object, except on a JSON field where it may be a value."""
    if not isinstance(value, Mapping):
        return False
    if col.kind != "json":
        return True
    return bool(value) and all(isinstance(key, str) and key in OPERATORS for key in value)


def _compare(meta: ModelMeta, col: Column, op: str, value: Any) -> Predicate:
    name = col.name
    if op == "eq":
        return Compare(name, "eq", _eq_text(meta, col, op, value))
    if op == "not":
        if _is_operator_object(col, value):
            return Not(_field_filter(meta, col, value))
        return Not(Compare(name, "eq", _eq_text(meta, col, op, value)))
    if op == "in":
        if not isinstance(value, list | tuple | set | frozenset):
            raise _error(meta, name, op, f"needs a list of values, got {type(value).__name__}")
        texts = tuple(dict.fromkeys(_eq_text(meta, col, op, item) for item in value))
        return Compare(name, "in", texts)
    if op in RANGE_OPS:
        if col.kind not in RANGE_KINDS:
            raise _error(meta, name, op, f"a {col.kind} field has no order to compare with")
        if value is None:
            raise _error(meta, name, op, "cannot compare with None; use eq: None for null")
        return Compare(name, op, _normalize(meta, col, op, value, ranged=True))  # type: ignore[arg-type]
    if op in TEXT_OPS:
        if col.kind != "text":
            raise _error(meta, name, op, f"needs a text field, not {col.kind}")
        if not isinstance(value, str):
            raise _error(meta, name, op, f"needs a str, got {type(value).__name__}")
        if has_surrogate(value):
            raise _error(meta, name, op, "text holding a lone surrogate cannot be queried")
        return Compare(name, op, value)  # type: ignore[arg-type]
    raise _error(meta, name, op, f"unknown operator; use one of {', '.join(OPERATORS)}")


def _field_filter(meta: ModelMeta, col: Column, value: Any) -> Predicate:
    if not _is_operator_object(col, value):
        return Compare(col.name, "eq", _eq_text(meta, col, "eq", value))
    return _all([_compare(meta, col, str(op), operand) for op, operand in value.items()])


def _all(items: Sequence[Predicate]) -> Predicate:
    return items[0] if len(items) == 1 else And(tuple(items))


def _clauses(meta: ModelMeta, key: str, value: Any) -> list[Predicate]:
    if isinstance(value, Mapping):
        return [parse_where(meta, value)]
    if isinstance(value, list | tuple):
        return [parse_where(meta, item) for item in value]
    raise QueryError(
        f"{meta.name}: {key} takes a where mapping or a list of them, got {type(value).__name__}",
        meta={"model": meta.name, "operator": key},
    )


def parse_where(meta: ModelMeta, where: Any) -> Predicate:
    """Turn a ``where`` mapping, a field expression or a list of them into a predicate, checking
    fields, operators and values."""
    if where is None:
        return TRUE
    if isinstance(where, expr.Condition | bool):
        return parse_condition(meta, where)
    if isinstance(where, list | tuple) and all(isinstance(item, expr.Condition | bool) for item in where):
        return _all([parse_condition(meta, item) for item in where]) if where else TRUE
    if not isinstance(where, Mapping):
        raise QueryError(f"{meta.name}: where must be a mapping, got {type(where).__name__}")
    items: list[Predicate] = []
    for key, value in where.items():
        if key == "AND":
            items.append(And(tuple(_clauses(meta, key, value))))
        elif key == "OR":
            items.append(Or(tuple(_clauses(meta, key, value))))
        elif key == "NOT":
            items.append(And(tuple(Not(clause) for clause in _clauses(meta, key, value))))
        else:
            items.append(_field_filter(meta, column(meta, str(key)), value))
    return _all(items) if items else TRUE


def _expression_field(meta: ModelMeta, model: type[Any], name: str, operator: str) -> Column:
    """The column a field expression names, which must be one of this model's fields."""
    if not (isinstance(model, type) and issubclass(meta.model, model)):
        raise QueryError(
            f"{model.__name__}.{name} is not a field of {meta.name}",
            meta={"model": meta.name, "field": name, "operator": operator},
        )
    return column(meta, name, operator)


def parse_condition(meta: ModelMeta, condition: Any) -> Predicate:
    """A field expression as the same predicate its dict form gives."""
    if isinstance(condition, expr.Compare):
        col = _expression_field(meta, condition.model, condition.field, condition.op)
        return _compare(meta, col, condition.op, condition.value)
    if isinstance(condition, expr.Range):
        col = _expression_field(meta, condition.model, condition.field, "range")
        bounds = [
            _compare(meta, col, op, value)
            for op, value in (("gte", condition.minval), ("lte", condition.maxval))
            if value is not None
        ]
        return _all(bounds) if bounds else TRUE
    if isinstance(condition, expr.AllOf):
        return And(tuple(parse_condition(meta, item) for item in condition.items))
    if isinstance(condition, expr.AnyOf):
        return Or(tuple(parse_condition(meta, item) for item in condition.items))
    if isinstance(condition, expr.NotOf):
        return Not(parse_condition(meta, condition.item))
    if isinstance(condition, bool):
        raise QueryError(
            f"{meta.name}: got a plain {condition} where a condition was expected; compare a field "
            f"on the class ({meta.name}.field == value), not an instance's value",
            meta={"model": meta.name},
        )
    raise QueryError(
        f"{meta.name}: expected a condition built from {meta.name}'s fields, got {type(condition).__name__}",
        meta={"model": meta.name},
    )


def range_paging(
    conditions: Sequence[Any], order_by: Any, take: int | None, skip: int
) -> tuple[Any, int | None, int]:
    """redisca's ``range(min, max, start, num)``, when it is a read's only condition, orders by
    its field and pages by ``start``/``num`` unless the read says otherwise."""
    if len(conditions) != 1 or not isinstance(conditions[0], expr.Range):
        return order_by, take, skip
    found = conditions[0]
    if order_by is None:
        order_by = expr.Order(found.model, found.field, False)
    if take is None and found.num is not None:
        take = found.num
    if skip == 0:
        skip = found.start
    return order_by, take, skip


def combine_where(conditions: Sequence[Any], where: Any) -> Any:
    """Positional conditions and a ``where`` together, as one where (their AND)."""
    if not conditions:
        return where
    if where is None:
        return conditions[0] if len(conditions) == 1 else expr.AllOf(tuple(conditions))
    return _Both(tuple(conditions), where)


@dataclass(frozen=True, slots=True)
class _Both:
    """Positional conditions next to a ``where`` argument (parsed as their AND)."""

    conditions: tuple[Any, ...]
    where: Any


def parse_order(meta: ModelMeta, order_by: Any) -> tuple[OrderKey, ...]:
    """``{"age": "desc"}`` or a list of such mappings; the id tie-break is appended, in the
    direction of the last key."""
    keys: list[OrderKey] = []
    if order_by is None:
        entries: Iterable[Any] = ()
    elif isinstance(order_by, Mapping | expr.Order | expr.Col):
        entries = [order_by]
    elif isinstance(order_by, list | tuple):
        entries = order_by
    else:
        raise QueryError(f"{meta.name}: order_by takes a mapping or a list of mappings")
    for entry in entries:
        if isinstance(entry, expr.Order | expr.Col):
            descending = isinstance(entry, expr.Order) and entry.descending
            name = entry.field if isinstance(entry, expr.Order) else entry.name
            model = entry.model
            _expression_field(meta, model, name, "order_by")
            entry = {name: "desc" if descending else "asc"}
        if not isinstance(entry, Mapping):
            raise QueryError(f"{meta.name}: each order_by entry must be a mapping like {{'age': 'asc'}}")
        for name, direction in entry.items():
            col = column(meta, str(name), "order_by")
            if not col.orderable:
                raise _error(meta, col.name, "order_by", f"a {col.kind} field cannot be ordered")
            if direction not in ("asc", "desc"):
                message = f"direction must be 'asc' or 'desc', not {preview(direction)}"
                raise _error(meta, col.name, "order_by", message)
            if any(key.field == col.name for key in keys):
                raise _error(meta, col.name, "order_by", "field is ordered twice")
            keys.append(OrderKey(col.name, direction == "desc"))
    if not any(key.field == "id" for key in keys):
        keys.append(OrderKey("id", keys[-1].descending if keys else False))
    return tuple(keys)


MAX_COUNT = 2**53
"""``take`` and ``skip`` beyond this are refused: scripts and servers read them as doubles."""


def _count(meta: ModelMeta, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise QueryError(
            f"{meta.name}: {name} must be an int from 0 to 2**53, got {preview(value)}",
            meta={"model": meta.name, "operator": name},
        )
    return value


def parse_query(
    meta: ModelMeta,
    where: Any = None,
    order_by: Any = None,
    take: int | None = None,
    skip: int = 0,
    cursor: Any = None,
) -> Query:
    """Check a whole read before any I/O."""
    cursor_text = None
    if cursor is not None:
        try:
            cursor_text = meta.id_text(cursor)
        except ValidationError as exc:
            raise QueryError(f"{meta.name}: bad cursor: {exc.message}", cause=exc) from exc
    if isinstance(where, _Both):
        parts = [*(parse_condition(meta, item) for item in where.conditions), parse_where(meta, where.where)]
        predicate = _all(parts)
    else:
        predicate = parse_where(meta, where)
    return Query(
        where=predicate,
        order=parse_order(meta, order_by),
        take=None if take is None else _count(meta, "take", take),
        skip=_count(meta, "skip", skip),
        cursor=cursor_text,
    )


def predicate_fields(predicate: Predicate) -> frozenset[str]:
    if isinstance(predicate, Compare):
        return frozenset({predicate.field})
    if isinstance(predicate, Not):
        return predicate_fields(predicate.item)
    out: frozenset[str] = frozenset()
    for item in predicate.items:
        out |= predicate_fields(item)
    return out
