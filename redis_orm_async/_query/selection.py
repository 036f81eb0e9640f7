"""``select`` and ``include`` as data: which fields one level reads and which relations it loads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, is_typeddict

from pydantic import BaseModel

from .._errors import QueryError
from .._model.relations import RelationMeta
from .._model.schema import ModelMeta, Schema
from .parse import Query, parse_query

NESTED_OPTIONS = ("where", "order_by", "take", "skip", "select", "include")


@dataclass(frozen=True)
class Selection:
    """What one level of a read returns: some fields (None: all) and the relations to load."""

    fields: frozenset[str] | None = None
    relations: Mapping[str, Nested] = field(default_factory=dict)
    projection: Any = None
    """A typed projection: the Pydantic model or TypedDict class each row is validated into."""


@dataclass(frozen=True)
class Nested:
    relation: RelationMeta
    query: Query
    selection: Selection


ALL = Selection()


def parse_selection(
    schema: Schema, meta: ModelMeta, select: Mapping[str, Any] | None, include: Mapping[str, Any] | None
) -> Selection:
    """Check ``select``/``include`` (nested to any depth) before any I/O."""
    if select is not None and include is not None:
        raise QueryError(f"{meta.name}: use select or include at one level, not both")
    chosen = select if select is not None else include
    if chosen is None:
        return ALL
    if select is not None and isinstance(select, type):
        return Selection(projection_fields(meta, select), projection=select)
    kind = "select" if select is not None else "include"
    if not isinstance(chosen, Mapping):
        raise QueryError(f"{meta.name}: {kind} takes a mapping, got {type(chosen).__name__}")
    fields: set[str] = {"id"}
    relations: dict[str, Nested] = {}
    for name, value in chosen.items():
        if name in meta.relations:
            if value is False:
                continue
            relations[name] = _nested(schema, meta, meta.relations[name], value)
        elif kind == "select" and (name == "id" or meta.field(name) is not None):
            if not isinstance(value, bool):
                raise QueryError(f"{meta.name}.{name}: select a field with True or False, not {value!r}",
                                 meta={"model": meta.name, "field": name, "operator": "select"})  # fmt: skip
            if value:
                selected = meta.field(name)
                fields.add("id" if selected is None else selected.name)
        else:
            what = "relation" if kind == "include" else "field or relation"
            raise QueryError(
                f"{meta.name} has no {what} {name!r} to {kind}",
                meta={"model": meta.name, "field": name, "operator": kind},
            )
    return Selection(frozenset(fields) if kind == "select" else None, relations)


def _nested(schema: Schema, meta: ModelMeta, relation: RelationMeta, value: Any) -> Nested:
    target = schema.by_name(relation.target)
    where = f"{meta.name}.{relation.name}"
    if value is True:
        return Nested(relation, parse_query(target), ALL)
    if not isinstance(value, Mapping):
        raise QueryError(f"{where}: load a relation with True or a mapping, not {value!r}",
                         meta={"model": meta.name, "relation": relation.name})  # fmt: skip
    unknown = [key for key in value if key not in NESTED_OPTIONS]
    if unknown:
        raise QueryError(f"{where}: unknown option {unknown[0]!r}; use {', '.join(NESTED_OPTIONS)}",
                         meta={"model": meta.name, "relation": relation.name})  # fmt: skip
    listed = [key for key in ("where", "order_by", "take", "skip") if key in value]
    if listed and not relation.to_many:
        raise QueryError(f"{where}: a to-one relation takes only select or include, not {listed[0]}",
                         meta={"model": meta.name, "relation": relation.name})  # fmt: skip
    query = parse_query(
        target, value.get("where"), value.get("order_by"), value.get("take"), value.get("skip", 0)
    )
    selection = parse_selection(schema, target, value.get("select"), value.get("include"))
    return Nested(relation, query, selection)


def projection_fields(meta: ModelMeta, projection: type[Any]) -> frozenset[str]:
    """The fields a projection class names, each one a field of the model (or its id)."""
    if isinstance(projection, type) and issubclass(projection, BaseModel):
        names = list(projection.model_fields)
    elif is_typeddict(projection):
        names = list(projection.__annotations__)
    else:
        raise QueryError(
            f"{meta.name}: select takes a mapping, a Pydantic model class or a TypedDict class, "
            f"not {projection!r}",
            meta={"model": meta.name, "operator": "select"},
        )
    stored = {"id"}
    for name in names:
        field = meta.field(name)
        if field is None and name != "id":
            raise QueryError(
                f"{projection.__name__}.{name} is not a field of {meta.name}{meta.field_hint(name)}",
                meta={"model": meta.name, "field": name, "operator": "select"},
            )
        if field is not None:
            stored.add(field.name)  # named by attribute, read by stored name
    return frozenset(stored)


def selection_fields(meta: ModelMeta, selection: Selection, query: Query | None = None) -> set[str] | None:
    """Fields one level must read: the selected ones, plus what filters, sorts and links need."""
    if selection.fields is None:
        return None
    needed = set(selection.fields)
    if query is not None:
        needed |= query.fields
    for nested in selection.relations.values():
        if nested.relation.kind == "belongs_to":
            needed.add(nested.relation.foreign_key)
    return needed
