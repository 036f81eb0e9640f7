"""``Schema`` gathers the models, checks them once, and holds each model's storage metadata."""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal

import pydantic
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, PydanticUndefined

from .._errors import SchemaError, ValidationError
from .codec import FieldCodec, codec_for, has_surrogate, preview, unwrap_optional
from .keys import SAFE_NAME, KeySpace
from .model import Model, ModelOptions, field_options
from .relations import RelationMeta, declared_relations

STORED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A stored field name: it becomes part of index and claim keys and of state lines, so it holds
no key separator, glob character, tab or newline."""
IdKind = Literal["generated", "manual_str", "manual_int"]
IndexKind = Literal["equality", "range"]
MAX_ID_LENGTH = 1024
MAX_SAFE_INT_ID = 2**53
MAX_LEX_LENGTH = 1024
"""The longest text a ``lex`` field stores: each value is a member of one ZSET that every lex
range compares byte by byte, so members stay short. Longer values are refused."""


@dataclass(frozen=True, slots=True)
class FieldMeta:
    """One field as the ORM stores it.

    ``name`` is the field's name *in Redis*: its HASH field, its index keys and its state line
    row. It is the attribute's name unless the field says ``Field(stored_as=...)``; below the
    API (planner, engine, scripts) fields are known by this name only, and ``attribute`` is what
    the caller and the Pydantic model call it."""

    name: str
    annotation: Any
    nullable: bool
    codec: FieldCodec
    index: IndexKind | None
    unique: bool
    lex: bool
    adapter: TypeAdapter[Any]
    """Validates one value of this field on its own, before any I/O."""
    owner: str = ""
    """The model's name, for messages."""
    constrained: bool = False
    """Part of a compound unique constraint (a single-field one sets ``unique``)."""
    attribute: str = ""
    """The model attribute, when it differs from the stored name."""
    encode: Callable[[Any], str] = field(init=False, repr=False, compare=False)
    """The stored text of a valid value, refusing what the field cannot store: the fast path of
    record encoding, which may raise a raw ``ValueError`` or ``TypeError`` (``text`` names the
    field instead)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "encode", _storage_encoder(self))

    @property
    def attr(self) -> str:
        """The model attribute: how callers, ``where`` and ``order_by`` name the field."""
        return self.attribute or self.name

    @property
    def label(self) -> str:
        return f"{self.owner}.{self.attr}" if self.owner else self.attr

    def validate(self, value: Any) -> Any:
        try:
            return self.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"invalid value for field {self.label!r}: {exc.errors()[0]['msg']}",
                errors=[dict(e) for e in exc.errors()],
                cause=exc,
                meta={"model": self.owner, "field": self.attr},
            ) from exc

    def parse(self, value: Any) -> Any:
        """Validate a caller's value and check that it can be stored; returns the valid value."""
        validated = self.validate(value)
        if validated is not None:
            self.text(validated)
        return validated

    def text(self, value: Any) -> str:
        """The stored text of a valid value, or a ``ValidationError`` naming this field."""
        try:
            return self.encode(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self.refusal(unstorable_reason(exc), exc) from exc

    def text_of(self, value: Any) -> str | None:
        """Validate a caller's value and return its stored text (None for null)."""
        validated = self.validate(value)
        if validated is None:
            return None
        try:
            return self.encode(validated)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self.refusal(unstorable_reason(exc), exc) from exc

    def refusal(self, reason: str, cause: BaseException | None = None) -> ValidationError:
        return ValidationError(
            f"{self.label}: {reason}", cause=cause, meta={"model": self.owner, "field": self.attr}
        )


def unstorable_reason(exc: BaseException) -> str:
    """Why a value cannot be stored, without quoting it (the exception's own text may)."""
    if isinstance(exc, UnicodeDecodeError):
        return "bytes that are not valid UTF-8 cannot be stored"
    if isinstance(exc, UnicodeEncodeError):
        return "text holding a lone surrogate cannot be stored (it has no UTF-8 encoding)"
    if isinstance(exc, pydantic.ValidationError):
        return "the value would not read back from JSON (a NaN or infinity in a float of a nested model?)"
    if isinstance(exc, PydanticSerializationError):
        return "the value cannot be serialized to JSON"
    message = str(exc)
    if message.startswith("JSON has no"):
        return f"{message}: store such numbers in a float field, or as text"
    if "digits" in message:
        return f"an int of more than {sys.get_int_max_str_digits()} digits cannot be stored"
    return f"the value cannot be stored ({type(exc).__name__})"


def _storage_encoder(meta: FieldMeta) -> Callable[[Any], str]:
    """The field's encoder with the checks its storage needs; other kinds keep the codec's."""
    encode = meta.codec.encode
    kind = meta.codec.kind
    if kind == "text":
        cap = MAX_LEX_LENGTH if meta.lex else None
        plain = encode is str

        def text(value: Any) -> str:
            stored = value if plain and type(value) is str else encode(value)
            if not stored.isascii() and has_surrogate(stored):
                raise meta.refusal(unstorable_reason(UnicodeEncodeError("utf-8", "", 0, 1, "")))
            if cap is not None and len(stored) > cap:
                raise meta.refusal(f"a lex-indexed text holds at most {cap} characters, got {len(stored)}")
            return stored

        return text
    if kind in ("float", "decimal") and (meta.index or meta.unique or meta.constrained):
        nan_refused = "NaN cannot be indexed or unique (NaN equals nothing, not even NaN)"
        if kind == "float":

            def float_number(value: Any) -> str:
                if value != value:  # NaN, without a call
                    raise meta.refusal(nan_refused)
                return encode(value)

            return float_number

        def decimal_number(value: Any) -> str:
            if value.is_nan():  # quiet and signaling NaN alike
                raise meta.refusal(nan_refused)
            return encode(value)

        return decimal_number
    return encode


@dataclass(frozen=True, slots=True)
class UniqueConstraint:
    """A unique or compound-unique constraint; ``name`` appears in its claim keys and errors."""

    name: str
    fields: tuple[str, ...]


NULLS = "~null"
"""The HASH field listing (comma-separated) the fields of a record written as None although
their default is not: an absent field reads as its default, so such a None is written down.
No stored name can hold a comma or start with '~'."""


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
    supplied_ids: bool = False
    """A generated-id model that lets callers supply an id (create-if-absent); see ``Model``."""
    max_life: timedelta | None = None
    """An absolute cap on a record's life, counted from its creation: no touch or ttl extends a
    record past it (a login session's hard limit next to its sliding idle timeout)."""

    @functools.cached_property
    def by_attribute(self) -> Mapping[str, FieldMeta]:
        """The fields by model attribute, as callers name them (``fields`` is by stored name)."""
        return {f.attr: f for f in self.fields.values()}

    @functools.cached_property
    def single_uniques(self) -> Mapping[str, tuple[UniqueConstraint, FieldMeta]]:
        """The unique constraints over one field (not the id), by the attribute callers name it by:
        the lookup of a session by its token, say, finds its constraint in one step."""
        return {
            field.attr: (constraint, field)
            for constraint in self.uniques
            if len(constraint.fields) == 1 and (field := self.fields.get(constraint.fields[0])) is not None
        }

    def field(self, attribute: str) -> FieldMeta | None:
        """The field a caller names (by attribute), or None."""
        return self.by_attribute.get(attribute)

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
                raise ValidationError(f"{self.name}.id must be an int, got {preview(value)}") from exc
            if abs(number) > MAX_SAFE_INT_ID:
                raise ValidationError(f"{self.name}.id must be within +/-2**53, got {preview(number)}")
            return str(number)
        if not isinstance(value, str):
            raise ValidationError(f"{self.name}.id must be a str, got {type(value).__name__}")
        if not value or len(value) > MAX_ID_LENGTH:
            raise ValidationError(f"{self.name}.id must be 1 to {MAX_ID_LENGTH} characters long")
        if not value.isascii() and has_surrogate(value):
            raise ValidationError(f"{self.name}.id cannot hold a lone surrogate (it has no UTF-8 encoding)")
        return value

    def id_score(self, id_text: str) -> float:
        """Int ids sort numerically in the id ZSET; string ids share score 0 and sort by text."""
        return float(int(id_text)) if self.id_kind == "manual_int" else 0.0

    def id_supplied(self, data: Model | Mapping[str, Any]) -> bool:
        """Whether the caller gave the id (in a validated instance, or in create data), rather
        than leaving it to the generator."""
        if isinstance(data, Model):
            return "id" in data.model_fields_set
        return not self._id_keys.isdisjoint(data)

    @functools.cached_property
    def _id_keys(self) -> frozenset[str]:
        """The keys create data may give the id under: its name, and its aliases."""
        return frozenset(("id", *_aliases(self.model.model_fields["id"])))

    def encode(self, instance: Model) -> dict[str, str | None]:
        """Each non-id field's stored text; ``None`` means the field is absent from the hash.

        Refuses, with a ``ValidationError`` naming the field, a value its field cannot store."""
        values = instance.__dict__
        out: dict[str, str | None] = {}
        try:
            for name, attribute, ascii_text, encode in self._encoders:
                value = values.get(attribute)
                if value is None:
                    out[name] = None
                elif ascii_text and type(value) is str and value.isascii():
                    out[name] = value  # plain text, and ASCII holds no surrogate: stored as is
                else:
                    out[name] = encode(value)
        except (ValueError, TypeError, OverflowError):
            for field_meta in self.fields.values():
                value = values.get(field_meta.attr)
                if value is not None:
                    field_meta.text(value)
            raise
        if self.null_marked:
            out[NULLS] = ",".join(name for name in self.null_marked if out[name] is None) or None
        return out

    @functools.cached_property
    def null_marked(self) -> tuple[str, ...]:
        """Stored names of the nullable fields whose default is not None: a None there must be
        written down (in ``NULLS``), since an absent field reads as its default."""
        marked = []
        for name, field_meta in self.fields.items():
            info = self.model.model_fields[field_meta.attr]
            has_default = info.default_factory is not None or info.default not in (None, PydanticUndefined)
            if field_meta.nullable and has_default:
                marked.append(name)
        return tuple(marked)

    @functools.cached_property
    def _encoders(self) -> tuple[tuple[str, str, bool, Callable[[Any], str]], ...]:
        """Each field's stored name, its attribute, whether it is plain unbounded text, and its
        encoder (keyed by stored name: the output is what the HASH holds)."""
        return tuple(
            (name, f.attr, f.codec.encode is str and not f.lex, f.encode) for name, f in self.fields.items()
        )

    def decode(self, id_text: str, stored: Mapping[str, str]) -> Model:
        """Build a model from its HASH; fields that the model no longer declares are ignored.

        Fields are read by their stored name and validated by attribute name, whatever the
        model's aliases say; a field the record lacks (one added to the model since) takes its
        default."""
        names, converters, by_name, renames = self._decoding
        values: Mapping[str, Any] = stored
        if not names.issuperset(values):
            values = {name: text for name, text in values.items() if name in names}
            nulls = stored.get(NULLS)
            if nulls:  # a field written as None, absent from the hash: None, not its default
                nulled = [name for name in nulls.split(",") if name in names and name not in stored]
                values.update(dict.fromkeys(nulled))
        try:
            if converters or renames or values.get("id") != id_text:  # else validated as stored
                values = {**values, "id": id_text}
                for name, decode in converters:
                    text = values.get(name)
                    if text is not None:
                        values[name] = decode(text)
                for name, attribute in renames:
                    if name in values:
                        values[attribute] = values.pop(name)
            # the validator itself: ``model_validate`` only forwards to it, at a cost per record
            validator = self.model.__pydantic_validator__
            instance: Model = (
                validator.validate_python(values, by_alias=False, by_name=True)
                if by_name
                else validator.validate_python(values)
            )
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"stored {self.name} record {preview(id_text)} does not fit the model: "
                f"{exc.errors()[0]['msg']} ({_location(exc)})",
                errors=[dict(e) for e in exc.errors()],
                cause=exc,
                meta={"model": self.name},
            ) from exc
        except ValueError as exc:
            field = self._unreadable_field(stored)
            raise ValidationError(
                f"stored {self.name} record {preview(id_text)} does not fit the model: a stored "
                f"value cannot be read ({type(exc).__name__})",
                cause=exc,
                meta={"model": self.name, "field": field},
            ) from exc
        return instance

    def _unreadable_field(self, stored: Mapping[str, str]) -> str:
        """Which stored text its field's decoder refuses (looked for only once one did)."""
        for name, decode in self._decoding[1]:
            text = stored.get(name)
            if text is not None:
                try:
                    decode(text)
                except ValueError:
                    return name
        return "record"

    def validate_names(self, values: Mapping[str, Any]) -> Model:
        """Validate a mapping the ORM built itself, keyed by attribute names (an updated record,
        say), whatever the model's aliases say; caller data goes through ``model_validate``."""
        try:
            by_name = self._decoding[2]
            validator = self.model.__pydantic_validator__
            if by_name:
                instance: Model = validator.validate_python(values, by_alias=False, by_name=True)
            else:
                instance = validator.validate_python(values)
        except pydantic.ValidationError as exc:
            raise invalid(self.name, exc) from exc
        return instance

    @functools.cached_property
    def _decoding(
        self,
    ) -> tuple[
        frozenset[str], tuple[tuple[str, Callable[[str], Any]], ...], bool, tuple[tuple[str, str], ...]
    ]:
        """The names a stored HASH may hold, the decoder of each field whose stored text is not
        already its value (text fields need none), whether validation must be told to go by
        attribute name (a field has an alias, or a JSON field may hold a model that has one), and
        the fields stored under another name than their attribute's."""
        names = frozenset(("id", *self.fields))
        converters = tuple((n, f.codec.decode) for n, f in self.fields.items() if f.codec.kind != "text")
        by_name = any(_aliases(info) for info in self.model.model_fields.values()) or any(
            f.codec.kind == "json" for f in self.fields.values()
        )
        renames = tuple((n, f.attribute) for n, f in self.fields.items() if f.attribute)
        return names, converters, by_name, renames

    def field_hint(self, name: str) -> str:
        """What to say about an unknown field name: the attribute to use if it is an alias or a
        stored name."""
        stored = self.fields.get(name)
        if stored is not None and stored.attribute:
            return f"; {name!r} is its stored name, name the field by its attribute {stored.attr!r}"
        for attribute, info in self.model.model_fields.items():
            if name in _aliases(info):
                return f"; {name!r} is an alias, name the field by its attribute {attribute!r}"
        return ""

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


def _aliases(info: pydantic.fields.FieldInfo) -> tuple[str, ...]:
    """Every name other than the attribute that validation may read a field under."""
    found: list[str] = []
    for alias in (info.alias, info.validation_alias):
        if isinstance(alias, str):
            found.append(alias)
        elif isinstance(alias, pydantic.AliasChoices):
            found.extend(choice for choice in alias.choices if isinstance(choice, str))
            found.extend(
                str(choice.path[0]) for choice in alias.choices if isinstance(choice, pydantic.AliasPath)
            )
        elif isinstance(alias, pydantic.AliasPath) and alias.path:
            found.append(str(alias.path[0]))
    return tuple(found)


def _location(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or "record"


def invalid(model: str, exc: pydantic.ValidationError, subject: str = "") -> ValidationError:
    """Pydantic's refusal as ours: its first message and where, and its details (``errors()``
    keeps no submitted value)."""
    return ValidationError(
        f"{subject or 'invalid ' + model}: {exc.errors()[0]['msg']} ({_location(exc)})",
        errors=[dict(e) for e in exc.errors()],
        cause=exc,
        meta={"model": model},
    )


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
    stored = name if options.stored_as is None else options.stored_as
    if not isinstance(stored, str) or not STORED_NAME.match(stored) or stored == "id":
        raise SchemaError(
            f"{where}: stored_as must be a name of letters, digits and '_' (not 'id'), got {stored!r}",
            meta={"field": name},
        )
    return FieldMeta(
        stored,
        annotation,
        nullable,
        codec,
        index,
        options.unique,
        options.lex,
        adapter,
        model.__name__,
        attribute="" if stored == name else name,
    )


def _stored_fields(model: type[Model], metas: list[FieldMeta]) -> dict[str, FieldMeta]:
    """The fields by stored name. Two fields cannot share a stored name, and a stored name cannot
    be another field's attribute: callers name fields by attribute and the engine by stored name,
    so that one name always means one field."""
    fields: dict[str, FieldMeta] = {}
    attributes = {meta.attr for meta in metas}
    for meta in metas:
        if meta.name in fields:
            raise SchemaError(
                f"{model.__name__}.{meta.attr}: stored as {meta.name!r}, which "
                f"{model.__name__}.{fields[meta.name].attr} is stored as too",
                meta={"field": meta.attr},
            )
        if meta.attribute and meta.name in attributes:
            raise SchemaError(
                f"{model.__name__}.{meta.attr}: stored as {meta.name!r}, which is the name of another "
                "field; pick a stored name no attribute has",
                meta={"field": meta.attr},
            )
        fields[meta.name] = meta
    return fields


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
    _check_options(model, options)
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
    fields = _stored_fields(
        model, [_field_meta(model, name, info) for name, info in model.model_fields.items() if name != "id"]
    )
    by_attribute = {f.attr: f.name for f in fields.values()}
    uniques = [UniqueConstraint(name, (name,)) for name, meta in fields.items() if meta.unique]
    for group in options.unique_together:
        for name in group:
            if name not in by_attribute and name != "id":
                raise SchemaError(
                    f"{model.__name__}: unique_together names unknown field {name!r}",
                    meta={"field": name},
                )
            if name != "id" and not fields[by_attribute[name]].codec.equality_capable:
                raise SchemaError(f"{model.__name__}.{name}: a json field cannot be unique")
        if len(group) < 1 or len(set(group)) != len(group):
            raise SchemaError(f"{model.__name__}: bad unique_together group {group!r}")
        stored_group = tuple(by_attribute.get(name, name) for name in group)
        uniques.append(UniqueConstraint("+".join(stored_group), stored_group))
        for name in stored_group:
            if name != "id":
                fields[name] = dataclasses.replace(fields[name], constrained=True)
    if options.supplied_ids and id_kind != "generated":
        raise SchemaError(
            f"{model.__name__}: supplied_ids applies to generated ids only; a model that declares "
            "its id always takes the caller's",
            meta={"field": "id"},
        )
    return ModelMeta(
        model=model,
        name=model.__name__,
        keys=KeySpace(prefix, namespace),
        id_kind=id_kind,
        fields=fields,
        uniques=tuple(uniques),
        ttl=options.ttl,
        supplied_ids=options.supplied_ids,
        max_life=options.max_life,
    )


def _check_options(model: type[Model], options: ModelOptions) -> None:
    """Class keywords of the wrong type are refused here rather than failing at the first write."""
    name = model.__name__
    if options.key_prefix is not None and not isinstance(options.key_prefix, str):
        raise SchemaError(f"{name}: key_prefix must be a str, got {type(options.key_prefix).__name__}")
    for option, value in (("ttl", options.ttl), ("max_life", options.max_life)):
        if value is not None:
            if not isinstance(value, timedelta):
                raise SchemaError(f"{name}: {option} must be a timedelta, got {type(value).__name__}")
            if value.total_seconds() <= 0:
                raise SchemaError(f"{name}: {option} must be positive")
    if options.max_life is not None and (_id_kind(model) != "generated" or options.supplied_ids):
        raise SchemaError(
            f"{name}: max_life needs generated ids (their ULID carries the creation time it counts "
            "from), not ids its callers choose",
            meta={"field": "id"},
        )
    if not isinstance(options.supplied_ids, bool):
        raise SchemaError(f"{name}: supplied_ids must be True or False")
    for group in options.unique_together:
        if not all(isinstance(item, str) for item in group):
            raise SchemaError(f"{name}: unique_together groups must list field names")
    if model.model_config.get("extra") == "allow":
        raise SchemaError(
            f"{name}: extra='allow' is not supported: extra fields would not be stored, and "
            "would be lost on the next read"
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


def _check_key(holder: ModelMeta, name: str, pointed: ModelMeta, where: str) -> str:
    """A foreign key must exist and hold ids of the pointed-to model's type; returns its stored
    name (relations are declared by attribute, loaded by stored name)."""
    field_meta = holder.field(name)
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
    return field_meta.name


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
            if meta.field(name) is not None or name == "id":
                raise SchemaError(f"{where}: a relation cannot share its name with a field")
            target = lookup(relation.target, where)
            through: ModelMeta | None = None
            target_key = relation.target_key
            if relation.kind == "belongs_to":
                foreign_key = _check_key(meta, relation.foreign_key, target, where)
            elif relation.kind in ("has_one", "has_many"):
                foreign_key = _check_key(target, relation.foreign_key, meta, where)
                indexed[target.name].add(foreign_key)
            else:
                if relation.through is None or relation.target_key is None:
                    raise SchemaError(f"{where}: many_to_many needs through, source_key and target_key")
                through = lookup(relation.through, where)
                foreign_key = _check_key(through, relation.foreign_key, meta, where)
                target_key = _check_key(through, relation.target_key, target, where)
                indexed[through.name].update((foreign_key, target_key))
            resolved[meta.name][name] = RelationMeta(
                name=name,
                kind=relation.kind,
                model=meta.name,
                target=target.name,
                foreign_key=foreign_key,
                through=None if through is None else through.name,
                target_key=target_key,
            )
    out: dict[type[Model], ModelMeta] = {}
    for model, meta in metas.items():
        fields = dict(meta.fields)
        for name in indexed[meta.name]:
            if fields[name].index is None:
                fields[name] = dataclasses.replace(fields[name], index="equality")
        out[model] = dataclasses.replace(meta, fields=fields, relations=resolved[meta.name])
    return out
