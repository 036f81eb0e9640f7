"""Relation loading: each nesting level of ``include``/``select`` in a constant number of round trips."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any, is_typeddict

import anyio
import pydantic

from .._backends.protocol import Backend
from .._errors import ValidationError
from .._model.codec import preview
from .._model.model import Model, attach_relations
from .._model.relations import RelationMeta
from .._model.schema import ModelMeta, Schema, invalid
from .._query.match import page
from .._query.parse import And, Compare, Query, Row
from .._query.selection import Nested, Selection, selection_fields
from .reads import fetch_rows, forget, read_pages, read_rows


def build_instance(meta: ModelMeta, row: Row, fields: Collection[str] | None) -> Model:
    """A model from a stored row; with ``fields``, a partial one holding only those fields."""
    if fields is None:
        return meta.decode(row["id"], row)
    values: dict[str, Any] = {}
    for name in fields:
        if name == "id":
            continue
        field_meta = meta.fields[name]
        text = row.get(name)
        try:
            value = None if text is None else field_meta.validate(field_meta.codec.decode(text))
            values[field_meta.attr] = value
        except (ValueError, ValidationError) as exc:
            raise ValidationError(
                f"stored {meta.name} record {row['id']!r} does not fit the model: {exc}", cause=exc
            ) from exc
    id_value: Any = int(row["id"]) if meta.id_kind == "manual_int" else row["id"]
    instance = meta.model.model_construct(_fields_set={"id", *values}, id=id_value, **values)
    for field_meta in meta.fields.values():
        if field_meta.attr not in values:
            instance.__dict__.pop(field_meta.attr, None)
    return instance


def _stored_name(meta: ModelMeta, attribute: str) -> str:
    field = meta.field(attribute)
    return attribute if field is None else field.name


def project(meta: ModelMeta, rows: Sequence[Row], projection: type[Any]) -> list[Any]:
    """Rows as a projection class that names only some of the model's fields: typed results with
    nothing missing at run time. A TypedDict gets the fields' values as the model validates them;
    a Pydantic model validates them again into its own fields."""
    typed_dict = is_typeddict(projection)
    names = list(projection.__annotations__) if typed_dict else list(projection.model_fields)
    stored = [name if name == "id" else _stored_name(meta, name) for name in names]
    out: list[Any] = []
    for row in rows:
        instance = build_instance(meta, row, stored)
        values = {name: getattr(instance, name) for name in names}
        if typed_dict:
            out.append(values)
            continue
        try:
            out.append(projection.model_validate(values, by_alias=False, by_name=True))
        except pydantic.ValidationError as exc:
            subject = f"{meta.name} record {preview(row['id'])} does not fit {projection.__name__}"
            raise invalid(meta.name, exc, subject) from exc
    return out


async def gather(calls: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
    """Run calls concurrently; the first failure is raised as itself (an ``OrmError``), not
    wrapped in the task group's exception group."""
    try:
        async with anyio.create_task_group() as group:
            for call in calls:
                group.start_soon(call)
    except BaseExceptionGroup as errors:
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from first.__cause__


async def materialize(
    backend: Backend, schema: Schema, meta: ModelMeta, rows: Sequence[Row], selection: Selection
) -> list[Any]:
    """Build the instances of one level and load their relations, one batch per relation, the
    relations of one level at once."""
    fields = selection.fields
    if selection.projection is not None:
        return project(meta, rows, selection.projection)
    if not selection.relations:
        if fields is None:  # whole records: decoded directly, the one call per row that matters
            decode = meta.decode
            return [decode(row["id"], row) for row in rows]
        return [build_instance(meta, row, fields) for row in rows]
    values: dict[str, dict[str, Any]] = {}

    async def load(name: str, nested: Nested) -> None:
        values[name] = await _load(backend, schema, meta, rows, nested)

    if len(selection.relations) == 1:
        for name, nested in selection.relations.items():
            await load(name, nested)
    else:
        await gather([functools.partial(load, name, nested) for name, nested in selection.relations.items()])
    loaded = [(name, nested.relation.to_many, values[name]) for name, nested in selection.relations.items()]
    instances: list[Model] = []
    for row in rows:
        instance = build_instance(meta, row, fields)
        parent = row["id"]
        relations = {name: values.get(parent, [] if to_many else None) for name, to_many, values in loaded}
        attach_relations(instance, relations)
        instances.append(instance)
    return instances


async def _lookup(
    backend: Backend, holder: ModelMeta, key_field: str, parent_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Ids of ``holder`` records whose ``key_field`` holds each parent id: one pipeline."""
    field_meta = holder.fields[key_field]
    codec = field_meta.codec
    commands: list[tuple[str | int | float, ...]] = []
    for parent in parent_ids:
        if field_meta.index == "range" and codec.score is not None:
            score = repr(codec.score(parent))
            commands.append(("ZRANGEBYSCORE", holder.keys.range(key_field), score, score))
        else:
            commands.append(("ZRANGE", holder.keys.equality(key_field, codec.token(parent)), 0, -1))
    replies = await backend.pipeline(commands) if commands else []
    return {parent: sorted(reply) for parent, reply in zip(parent_ids, replies, strict=True)}


async def _windows(
    backend: Backend,
    target: ModelMeta,
    relation: RelationMeta,
    nested: Nested,
    parents: Sequence[str],
    fields: Collection[str] | None,
) -> dict[str, list[Row]] | None:
    """Each parent's page of children read on its own, when a page is all that is wanted (a
    nested ``take``/``skip``, or a has-one's first child): one read script per parent walks
    that parent's key index from the page's start, all in one pipeline, so no child outside a
    page is read. None when the pages cannot be read that way (an unindexed nested where, a
    server without scripts): then every child is read and paged in Python."""
    query = nested.query
    if relation.kind == "has_one":
        query = dataclasses.replace(query, take=1)
    elif query.take is None and not query.skip:
        return None
    key = relation.foreign_key
    pages = [
        dataclasses.replace(query, where=And((Compare(key, "eq", parent), query.where))) for parent in parents
    ]
    found = await read_pages(backend, target, pages, fields)
    return None if found is None else dict(zip(parents, found, strict=True))


async def _load(
    backend: Backend, schema: Schema, meta: ModelMeta, rows: Sequence[Row], nested: Nested
) -> dict[str, Any]:
    """Parent id to the loaded value of one relation, for every parent row at once."""
    relation = nested.relation
    target = schema.by_name(relation.target)
    fields = selection_fields(target, nested.selection, nested.query)
    if relation.kind == "belongs_to":
        # at most one target per parent and no nested where, order or page: nothing to filter
        links = {row["id"]: row.get(relation.foreign_key) for row in rows}
        found = await fetch_rows(backend, target, [v for v in links.values() if v is not None], fields)
        built = await materialize(backend, schema, target, list(found.values()), nested.selection)
        by_link = dict(zip(found, built, strict=True))
        return {parent: None if link is None else by_link.get(link) for parent, link in links.items()}
    parents = [row["id"] for row in rows]
    groups: dict[str, list[Row]] | None = None
    if relation.kind in ("has_one", "has_many"):
        groups = await _windows(backend, target, relation, nested, parents, fields)
    if groups is not None:
        pass  # each parent's window is already its page
    elif relation.kind in ("has_one", "has_many"):
        key = relation.foreign_key
        children = await _lookup(backend, target, key, parents)
        wanted = None if fields is None else {*fields, key}
        found = await fetch_rows(backend, target, [c for ids in children.values() for c in ids], wanted)
        await forget(backend, target, [c for ids in children.values() for c in ids if c not in found])
        groups = {
            parent: page(target, [found[c] for c in ids if c in found and found[c].get(key) == parent],
                         nested.query)
            for parent, ids in children.items()
        }  # fmt: skip
    else:
        assert relation.through is not None and relation.target_key is not None
        join = schema.by_name(relation.through)
        source_key, target_key = relation.foreign_key, relation.target_key
        links_by_parent = await _lookup(backend, join, source_key, parents)
        join_ids = [j for ids in links_by_parent.values() for j in ids]
        join_rows = await fetch_rows(backend, join, join_ids, {source_key, target_key})
        await forget(backend, join, [j for j in join_ids if j not in join_rows])
        linked: dict[str, list[str]] = {}
        for parent, join_ids in links_by_parent.items():
            targets = [join_rows[j].get(target_key) for j in join_ids if j in join_rows
                       and join_rows[j].get(source_key) == parent]  # fmt: skip
            linked[parent] = list(dict.fromkeys(t for t in targets if t is not None))
        found = await fetch_rows(backend, target, [t for ids in linked.values() for t in ids], fields)
        groups = {parent: [found[t] for t in ids if t in found] for parent, ids in linked.items()}
        groups = {parent: page(target, members, nested.query) for parent, members in groups.items()}
    unique = list({row["id"]: row for members in groups.values() for row in members}.values())
    instances = await materialize(backend, schema, target, unique, nested.selection)
    by_id = {row["id"]: instance for row, instance in zip(unique, instances, strict=True)}
    if relation.to_many:
        return {parent: [by_id[row["id"]] for row in members] for parent, members in groups.items()}
    return {parent: by_id[members[0]["id"]] if members else None for parent, members in groups.items()}


async def find_selected(
    backend: Backend, schema: Schema, meta: ModelMeta, query: Query, selection: Selection
) -> list[Any]:
    """Rows of one query with their selected relations: the whole of ``find_many``."""
    rows = await read_rows(backend, meta, query, selection_fields(meta, selection))
    return await materialize(backend, schema, meta, rows, selection)
