"""``Schema`` gathers the models, checks them once, and holds each model's storage metadata."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal

import pydantic
from pydantic import TypeAdapter

from .._errors import SchemaError, ValidationError
from .codec import FieldCodec, codec_for, unwrap_optional
from .keys import SAFE_NAME, KeySpace
from .model import Model, field_options
from .relations import RelationMeta, declared_relations

IdKind = Literal["generated", "manual_str", "manual_int"]
IndexKind = Literal["equality", "range"]
MAX_ID_LENGTH = 1024
MAX_SAFE_INT_ID = 2**53


@dataclass(frozen=True, slots=True)
class FieldMeta:
    name: str
    annotation: Any
    nullable: bool
    codec: FieldCodec
    index: IndexKind | None
    unique: bool
    lex: bool
    adapter: TypeAdapter[Any]
    """Validates one value of this field on its own, before any I/O."""

    def validate(self, value: Any) -> Any:
        try:
            return self.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"invalid value for field {self.name!r}: {exc.errors()[0]['msg']}",
                errors=[dict(e) for e in exc.errors()],
                cause=exc,
                meta={"field": self.name},
            ) from exc

    def text_of(self, value: Any) -> str | None:
        """Validate a caller's value and return its stored text (None for null)."""
        validated = self.validate(value)
        return None if validated is None else self.codec.encode(validated)


@dataclass(frozen=True, slots=True)
class UniqueConstraint:
    """A unique or compound-unique constraint; ``name`` appears in its claim keys and errors."""

    name: str
    fields: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ModelMeta:
    """Everything the repository needs to store one model."""

    model: type[Model]
    name: str
    keys: KeySpace
    id_kind: IdKind
    fields: Mapping[str, FieldMeta]
    uniques: tuple[UniqueConstraint, ...]
    ttl: timedelta | None
    relations: Mapping[str, Any] = field(default_factory=dict)

    @property
    def indexed_fields(self) -> tuple[FieldMeta, ...]:
        return tuple(f for f in self.fields.values() if f.index or f.lex)

    def id_text(self, value: Any) -> str:
        """Validate an id value given by a caller and return its stored text."""
        if self.id_kind == "manual_int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValidationError(f"{self.name}.id must be an int, got {type(value).__name__}")
            try:
                number = int(value)
            except ValueError as exc:
                raise ValidationError(f"{self.name}.id must be an int, got {value!r}") from exc
            if abs(number) > MAX_SAFE_INT_ID:
                raise ValidationError(f"{self.name}.id must be within +/-2**53, got {number}")
            return str(number)
        if not isinstance(value, str):
            raise ValidationError(f"{self.name}.id must be a str, got {type(value).__name__}")
        if not value or len(value) > MAX_ID_LENGTH:
            raise ValidationError(f"{self.name}.id must be 1 to {MAX_ID_LENGTH} characters long")
        return value

    def id_score(self, id_text: str) -> float:
        """Int ids sort numerically in the id ZSET; string ids share score 0 and sort by text."""
        return float(int(id_text)) if self.id_kind == "manual_int" else 0.0

    def encode(self, instance: Model) -> dict[str, str | None]:
        """Each non-id field's stored text; ``None`` means the field is absent from the hash."""
        out: dict[str, str | None] = {}
        values = instance.__dict__
        for name, meta in self.fields.items():
            value = values.get(name)
            out[name] = None if value is None else meta.codec.encode(value)
        return out

    def decode(self, id_text: str, stored: Mapping[str, str]) -> Model:
        """Build a model from its HASH; fields that the model no longer declares are ignored."""
        names, converters = self._decoding
        values: Mapping[str, Any] = stored
        if not names.issuperset(values):
            values = {name: text for name, text in values.items() if name in names}
        try:
            if converters or values.get("id") != id_text:  # else validated as stored, uncopied
                values = {**values, "id": id_text}
                for name, decode in converters:
                    text = values.get(name)
                    if text is not None:
                        values[name] = decode(text)
            # the validator itself: ``model_validate`` only forwards to it, at a cost per record
            instance: Model = self.model.__pydantic_validator__.validate_python(values)
        except (ValueError, pydantic.ValidationError) as exc:
            raise ValidationError(
                f"stored {self.name} record {id_text!r} does not fit the model: {exc}", cause=exc
            ) from exc
        return instance

    @functools.cached_property
    def _decoding(self) -> tuple[frozenset[str], tuple[tuple[str, Callable[[str], Any]], ...]]:
        """The names a stored HASH may hold, and the decoder of each field whose stored text is
        not already its value (text fields need none)."""
        names = frozenset(("id", *self.fields))
        converters = tuple((n, f.codec.decode) for n, f in self.fields.items() if f.codec.kind != "text")
        return names, converters

    def claim_key(
        self, constraint: UniqueConstraint, encoded: Mapping[str, str | None], id_text: str
    ) -> str | None:
        """The claim key of one constraint, or None when one of its fields is null."""
        tokens = []
        for name in constraint.fields:
            if name == "id":
                tokens.append(id_text)
                continue
            text = encoded.get(name)
            if text is None:
                return None
            tokens.append(self.fields[name].codec.token(text))
        return self.keys.unique(constraint.name, tokens)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _field_meta(model: type[Model], name: str, info: pydantic.fields.FieldInfo) -> FieldMeta:
    annotation, nullable = unwrap_optional(info.annotation)
    codec = codec_for(annotation)
    options = field_options(info)
    where = f"{model.__name__}.{name}"
    index: IndexKind | None = None
    if options.index:
        if codec.range_capable:
            index = "range"
        elif codec.equality_capable:
            index = "equality"
        else:
            raise SchemaError(f"{where}: a {codec.kind} field cannot be indexed", meta={"field": name})
    if options.unique and not codec.equality_capable:
        raise SchemaError(f"{where}: a {codec.kind} field cannot be unique", meta={"field": name})
    if options.lex and codec.kind != "text":
        raise SchemaError(f"{where}: lex indexes need a text field", meta={"field": name})
    annotated: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotated)
    return FieldMeta(name, annotation, nullable, codec, index, options.unique, options.lex, adapter)


def _id_kind(model: type[Model]) -> IdKind:
    info = model.model_fields["id"]
    where = f"{model.__name__}.id"
    annotation, nullable = unwrap_optional(info.annotation)
    if nullable:
        raise SchemaError(f"{where}: the id cannot be optional")
    generated = not info.is_required()
    if annotation is int:
        if generated:
            raise SchemaError(
                f"{where}: generated integer ids are not supported; declare `id: int` without a "
                "default and pass ids yourself, or use the generated string id",
                meta={"field": "id"},
            )
        return "manual_int"
    if annotation is str:
        return "generated" if generated else "manual_str"
    raise SchemaError(f"{where}: ids must be str or int, not {annotation!r}")


def build_model_meta(model: type[Model], namespace: str = "") -> ModelMeta:
    if not (isinstance(model, type) and issubclass(model, Model)) or model is Model:
        raise SchemaError(f"{model!r} is not a redis_orm_async.Model subclass")
    options = model.__orm_options__
    prefix = options.key_prefix or _snake(model.__name__)
    if "." in prefix:
        raise SchemaError(
            f"{model.__name__}: schema-qualified names like {prefix!r} are not supported; "
            "Redis has no schemas, use a plain key prefix"
        )
    if not SAFE_NAME.match(prefix):
        raise SchemaError(
            f"{model.__name__}: key prefix {prefix!r} may only hold letters, digits, '_' and '-'"
        )
    id_kind = _id_kind(model)
    fields = {
        name: _field_meta(model, name, info)
        for name, info in model.model_fields.items()
        if name != "id"
    }
    uniques = [UniqueConstraint(name, (name,)) for name, meta in fields.items() if meta.unique]
    for group in options.unique_together:
        for name in group:
            if name not in fields and name != "id":
                raise SchemaError(
                    f"{model.__name__}: unique_together names unknown field {name!r}",
                    meta={"field": name},
                )
            if name != "id" and not fields[name].codec.equality_capable:
                raise SchemaError(f"{model.__name__}.{name}: a json field cannot be unique")
        if len(group) < 1 or len(set(group)) != len(group):
            raise SchemaError(f"{model.__name__}: bad unique_together group {group!r}")
        uniques.append(UniqueConstraint("+".join(group), tuple(group)))
    if options.ttl is not None and options.ttl.total_seconds() <= 0:
        raise SchemaError(f"{model.__name__}: ttl must be positive")
    return ModelMeta(
        model=model,
        name=model.__name__,
        keys=KeySpace(prefix, namespace),
        id_kind=id_kind,
        fields=fields,
        uniques=tuple(uniques),
        ttl=options.ttl,
    )


class Schema:
    """The set of models one ORM stores, checked once when the schema is built."""

    def __init__(self, models: Iterable[type[Model]], *, namespace: str = "") -> None:
        if namespace and (not SAFE_NAME.match(namespace) or "." in namespace):
            raise SchemaError(f"namespace {namespace!r} may only hold letters, digits, '_', '-'")
        self.namespace = namespace
        self._metas: dict[type[Model], ModelMeta] = {}
        prefixes: dict[str, str] = {}
        for model in models:
            if model in self._metas:
                raise SchemaError(f"{model.__name__} is listed twice in the schema")
            meta = build_model_meta(model, namespace)
            if meta.keys.prefix in prefixes:
                raise SchemaError(
                    f"{model.__name__}: key prefix {meta.keys.prefix!r} is already used by "
                    f"{prefixes[meta.keys.prefix]}"
                )
            prefixes[meta.keys.prefix] = model.__name__
            self._metas[model] = meta
        self._metas = resolve_relations(self._metas)
        self._by_name = {meta.name: meta for meta in self._metas.values()}

    def meta(self, model: type[Model]) -> ModelMeta:
        try:
            return self._metas[model]
        except KeyError:
            raise SchemaError(f"{getattr(model, '__name__', model)!r} is not in this schema") from None

    def by_name(self, name: str) -> ModelMeta:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(f"no model named {name!r} in this schema") from None

    @property
    def models(self) -> tuple[type[Model], ...]:
        return tuple(self._metas)

    def __iter__(self) -> Iterator[ModelMeta]:
        return iter(self._metas.values())

    def __repr__(self) -> str:
        return f"Schema([{', '.join(m.name for m in self)}])"


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
