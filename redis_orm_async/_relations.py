"""Relations: declared on the model class, checked once by the Schema, loaded in batches.

Declare them as typed class variables, so that mypy sees ``user.posts`` as ``list[Post]`` and
``post.author`` as ``User | None``::

    class User(Model):
        posts: ClassVar[HasMany[Post]] = has_many("Post", foreign_key="author_id")
        orgs: ClassVar[ManyToMany[Org]] = many_to_many(
            "Org", through="Membership", source_key="user_id", target_key="org_id"
        )

    class Post(Model):
        author_id: str | None = None
        author: ClassVar[BelongsTo[User]] = belongs_to("User", foreign_key="author_id")

A relation is loaded only when a read asks for it (``include`` or ``select``, nested to any
depth); reading one that was not loaded raises ``RelationNotLoadedError`` rather than doing hidden
I/O. Each nesting level is a constant number of pipelined round trips whatever the number of
parent rows: belongs-to 1, has-one and has-many 2, many-to-many 3. A foreign key that points at a
missing record gives ``None`` (belongs-to, has-one) or is skipped (lists); it never raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, overload

from ._errors import QueryError, RelationNotLoadedError, SchemaError, ValidationError
from ._model import Model, attach_relations, loaded_relations
from ._query import Query, Row, page, parse_query
from ._reads import fetch_rows, forget, read_rows

if TYPE_CHECKING:
    from ._backend import Backend
    from ._schema import ModelMeta, Schema

T = TypeVar("T", bound=Model)
RelationKind = Literal["belongs_to", "has_one", "has_many", "many_to_many"]
NESTED_OPTIONS = ("where", "order_by", "take", "skip", "select", "include")


class Relation(Generic[T]):
    """A relation descriptor; the loaded value lives in the instance's ``loaded_relations``."""

    kind: ClassVar[RelationKind]

    def __init__(
        self,
        target: type[T] | str,
        *,
        foreign_key: str,
        through: type[Model] | str | None = None,
        target_key: str | None = None,
    ) -> None:
        self.target = target
        self.foreign_key = foreign_key
        self.through = through
        self.target_key = target_key
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    def _loaded(self, instance: Any) -> Any:
        relations = loaded_relations(instance)
        try:
            return relations[self.name]
        except KeyError:
            raise RelationNotLoadedError(
                f"{type(instance).__name__}.{self.name} was not loaded; read it with "
                f"include={{{self.name!r}: True}} or select",
                meta={"model": type(instance).__name__, "relation": self.name},
            ) from None

    def __repr__(self) -> str:
        target = self.target if isinstance(self.target, str) else self.target.__name__
        return f"{type(self).__name__}({target!r}, foreign_key={self.foreign_key!r})"


class BelongsTo(Relation[T]):
    """The foreign key is on this model; the value is the target record or None."""

    kind = "belongs_to"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> BelongsTo[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> T | None: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> BelongsTo[T] | T | None:
        if instance is None:
            return self
        value: T | None = self._loaded(instance)
        return value


class HasOne(Relation[T]):
    """The foreign key is on the target; the value is its first record by id, or None."""

    kind = "has_one"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> HasOne[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> T | None: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> HasOne[T] | T | None:
        if instance is None:
            return self
        value: T | None = self._loaded(instance)
        return value


class HasMany(Relation[T]):
    """The foreign key is on the target; the value is a list of its records."""

    kind = "has_many"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> HasMany[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> list[T]: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> HasMany[T] | list[T]:
        if instance is None:
            return self
        value: list[T] = self._loaded(instance)
        return value


class ManyToMany(Relation[T]):
    """Linked through a join model holding one foreign key to each side."""

    kind = "many_to_many"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> ManyToMany[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> list[T]: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> ManyToMany[T] | list[T]:
        if instance is None:
            return self
        value: list[T] = self._loaded(instance)
        return value


def belongs_to(target: type[T] | str, *, foreign_key: str) -> BelongsTo[T]:
    """This model's ``foreign_key`` field holds the id of a ``target`` record."""
    return BelongsTo(target, foreign_key=foreign_key)


def has_one(target: type[T] | str, *, foreign_key: str) -> HasOne[T]:
    """The ``target``'s ``foreign_key`` field holds this record's id (it gets an equality index)."""
    return HasOne(target, foreign_key=foreign_key)


def has_many(target: type[T] | str, *, foreign_key: str) -> HasMany[T]:
    """The ``target``'s ``foreign_key`` field holds this record's id (it gets an equality index)."""
    return HasMany(target, foreign_key=foreign_key)


def many_to_many(
    target: type[T] | str, *, through: type[Model] | str, source_key: str, target_key: str
) -> ManyToMany[T]:
    """Records of ``through`` link this model (``source_key``) to ``target`` (``target_key``)."""
    return ManyToMany(target, foreign_key=source_key, through=through, target_key=target_key)


@dataclass(frozen=True, slots=True)
class RelationMeta:
    """A relation as the Schema resolved it; models are named, keys are field names.

    ``foreign_key`` is on the owner (belongs-to), on the target (has-one, has-many), or on the
    join model pointing at the owner (many-to-many, with ``target_key`` pointing at the target).
    """

    name: str
    kind: RelationKind
    model: str
    target: str
    foreign_key: str
    through: str | None = None
    target_key: str | None = None

    @property
    def to_many(self) -> bool:
        return self.kind in ("has_many", "many_to_many")


def declared_relations(model: type[Model]) -> dict[str, Relation[Any]]:
    found: dict[str, Relation[Any]] = {}
    for klass in reversed(model.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Relation):
                found[name] = value
    return found


def _check_key(holder: ModelMeta, name: str, pointed: ModelMeta, where: str) -> None:
    """A foreign key must exist and hold ids of the pointed-to model's type."""
    field_meta = holder.fields.get(name)
    if field_meta is None:
        raise SchemaError(
            f"{where}: {holder.name} has no foreign key field {name!r}",
            meta={"model": holder.name, "field": name},
        )
    expected = "int" if pointed.id_kind == "manual_int" else "text"
    if field_meta.codec.kind != expected:
        wanted = "int" if expected == "int" else "str"
        raise SchemaError(
            f"{where}: foreign key {holder.name}.{name} must be {wanted} to hold {pointed.name} ids, "
            f"not {field_meta.codec.kind}",
            meta={"model": holder.name, "field": name},
        )


def resolve_relations(metas: Mapping[type[Model], ModelMeta]) -> dict[type[Model], ModelMeta]:
    """Check every declared relation and return the metas with ``relations`` filled in.

    The foreign keys that has-one, has-many and many-to-many look up get an equality index when
    they were declared without one, so that loading never scans.
    """
    by_name = {meta.name: meta for meta in metas.values()}

    def lookup(ref: type[Model] | str, where: str) -> ModelMeta:
        found = by_name.get(ref) if isinstance(ref, str) else metas.get(ref)
        if found is None:
            shown = ref if isinstance(ref, str) else getattr(ref, "__name__", repr(ref))
            raise SchemaError(f"{where}: relation target {shown!r} is not in the schema")
        return found

    indexed: dict[str, set[str]] = {name: set() for name in by_name}
    resolved: dict[str, dict[str, RelationMeta]] = {name: {} for name in by_name}
    for model, meta in metas.items():
        for name, relation in declared_relations(model).items():
            where = f"{meta.name}.{name}"
            if name in meta.fields or name == "id":
                raise SchemaError(f"{where}: a relation cannot share its name with a field")
            target = lookup(relation.target, where)
            through: ModelMeta | None = None
            if relation.kind == "belongs_to":
                _check_key(meta, relation.foreign_key, target, where)
            elif relation.kind in ("has_one", "has_many"):
                _check_key(target, relation.foreign_key, meta, where)
                indexed[target.name].add(relation.foreign_key)
            else:
                if relation.through is None or relation.target_key is None:
                    raise SchemaError(f"{where}: many_to_many needs through, source_key and target_key")
                through = lookup(relation.through, where)
                _check_key(through, relation.foreign_key, meta, where)
                _check_key(through, relation.target_key, target, where)
                indexed[through.name].update((relation.foreign_key, relation.target_key))
            resolved[meta.name][name] = RelationMeta(
                name=name,
                kind=relation.kind,
                model=meta.name,
                target=target.name,
                foreign_key=relation.foreign_key,
                through=None if through is None else through.name,
                target_key=relation.target_key,
            )
    out: dict[type[Model], ModelMeta] = {}
    for model, meta in metas.items():
        fields = dict(meta.fields)
        for name in indexed[meta.name]:
            if fields[name].index is None:
                fields[name] = dataclasses.replace(fields[name], index="equality")
        out[model] = dataclasses.replace(meta, fields=fields, relations=resolved[meta.name])
    return out


@dataclass(frozen=True)
class Selection:
    """What one level of a read returns: some fields (None: all) and the relations to load."""

    fields: frozenset[str] | None = None
    relations: Mapping[str, Nested] = field(default_factory=dict)


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
        elif kind == "select" and (name == "id" or name in meta.fields):
            if not isinstance(value, bool):
                raise QueryError(f"{meta.name}.{name}: select a field with True or False, not {value!r}",
                                 meta={"model": meta.name, "field": name, "operator": "select"})  # fmt: skip
            if value:
                fields.add(name)
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
            values[name] = None if text is None else field_meta.validate(field_meta.codec.decode(text))
        except (ValueError, ValidationError) as exc:
            raise ValidationError(
                f"stored {meta.name} record {row['id']!r} does not fit the model: {exc}", cause=exc
            ) from exc
    id_value: Any = int(row["id"]) if meta.id_kind == "manual_int" else row["id"]
    instance = meta.model.model_construct(_fields_set={"id", *values}, id=id_value, **values)
    for name in meta.fields:
        if name not in values:
            instance.__dict__.pop(name, None)
    return instance


async def materialize(
    backend: Backend, schema: Schema, meta: ModelMeta, rows: Sequence[Row], selection: Selection
) -> list[Model]:
    """Build the instances of one level and load their relations, one batch per relation."""
    fields = selection.fields
    if not selection.relations:
        if fields is None:  # whole records: decoded directly, the one call per row that matters
            decode = meta.decode
            return [decode(row["id"], row) for row in rows]
        return [build_instance(meta, row, fields) for row in rows]
    loaded = [
        (name, nested.relation.to_many, await _load(backend, schema, meta, rows, nested))
        for name, nested in selection.relations.items()
    ]
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
            commands.append(("SMEMBERS", holder.keys.equality(key_field, codec.token(parent))))
    replies = await backend.pipeline(commands) if commands else []
    return {parent: sorted(reply) for parent, reply in zip(parent_ids, replies, strict=True)}


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
    groups: dict[str, list[Row]]
    if relation.kind in ("has_one", "has_many"):
        key = relation.foreign_key
        children = await _lookup(backend, target, key, parents)
        wanted = None if fields is None else {*fields, key}
        found = await fetch_rows(backend, target, [c for ids in children.values() for c in ids], wanted)
        await forget(backend, target, [c for ids in children.values() for c in ids if c not in found])
        groups = {
            parent: [found[c] for c in ids if c in found and found[c].get(key) == parent]
            for parent, ids in children.items()
        }
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
) -> list[Model]:
    """Rows of one query with their selected relations: the whole of ``find_many``."""
    rows = await read_rows(backend, meta, query, selection_fields(meta, selection))
    return await materialize(backend, schema, meta, rows, selection)
