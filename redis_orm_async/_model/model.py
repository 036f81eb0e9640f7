"""Models are plain Pydantic classes; ``Field`` adds the storage options the ORM reads.

Class keywords set per-model storage options, keeping everything about a model on its class::

    class Session(Model, key_prefix="sess", ttl=timedelta(minutes=30),
                  unique_together=[("user_id", "device")]):
        ...
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, dataclass_transform

import pydantic
from pydantic import BaseModel, ConfigDict, PrivateAttr
from pydantic._internal._model_construction import ModelMetaclass
from pydantic_core import PydanticUndefined

from .._errors import SchemaError
from .expressions import Col
from .ids import new_ulid


@dataclass(frozen=True, slots=True)
class FieldOptions:
    """The ORM's part of a field declaration, kept in the Pydantic ``FieldInfo`` metadata."""

    index: bool = False
    unique: bool = False
    lex: bool = False
    stored_as: str | None = None


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Per-model storage options given as class keywords."""

    key_prefix: str | None = None
    unique_together: tuple[tuple[str, ...], ...] = ()
    ttl: timedelta | None = None
    supplied_ids: bool = False
    max_life: timedelta | None = None


def Field(
    default: Any = PydanticUndefined,
    *,
    index: bool = False,
    unique: bool = False,
    lex: bool = False,
    stored_as: str | None = None,
    **kwargs: Any,
) -> Any:
    """A Pydantic field with storage options.

    ``index`` keeps an equality SET (text, bool, enum) or a range ZSET (numbers, dates);
    ``unique`` keeps an atomic claim key per value; ``lex`` keeps a lexicographic ZSET of a text
    field for ``startswith`` and text ordering. ``stored_as`` is the field's name in Redis (its
    HASH field, index keys and claims) when it should differ from the attribute: a short name
    that saves memory on every record (redisca's ``field='eml'``), or the old name of an
    attribute renamed in Python, so that existing records and indexes keep working.
    """
    info: Any = pydantic.Field(default, **kwargs)
    if index or unique or lex or stored_as is not None:
        info.metadata.append(FieldOptions(index=index, unique=unique, lex=lex, stored_as=stored_as))
    return info


def field_options(info: pydantic.fields.FieldInfo) -> FieldOptions:
    for item in info.metadata:
        if isinstance(item, FieldOptions):
            return item
    return FieldOptions()


_BUILDING: ContextVar[bool] = ContextVar("_BUILDING", default=False)
"""True while a model class is being built: Pydantic asks then whether a parent class has an
attribute named like each field, and a field expression must not answer (it would read as a
field shadowing a parent's attribute)."""


class ModelClass(ModelMetaclass):
    """Pydantic's model metaclass, which also answers ``User.age`` with a field expression.

    Pydantic keeps fields off the class, so ``User.age`` would be an ``AttributeError``; this
    ``__getattr__`` runs only then, and never for an instance's attributes, so instances, partial
    instances, ``model_fields``, ``model_copy`` and relation descriptors behave as before. It is
    hidden from type checkers, which read ``User.age`` as the field's declared type and report a
    misspelled name."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
        token = _BUILDING.set(True)
        try:
            return super().__new__(mcs, name, bases, namespace, **kwargs)
        finally:
            _BUILDING.reset(token)

    if not TYPE_CHECKING:

        def __getattr__(cls, name: str) -> Any:
            if not name.startswith("_") and not _BUILDING.get():
                fields = cls.__dict__.get("__pydantic_fields__")
                if fields is not None and name in fields:
                    return Col(cls, name)
            return super().__getattr__(name)


@dataclass_transform(kw_only_default=True, field_specifiers=(pydantic.Field, PrivateAttr, Field))
class Model(BaseModel, metaclass=ModelClass):
    """Base class of stored models. Without an ``id`` declaration the id is a generated ULID.

    Class keywords: ``key_prefix``, ``unique_together``, ``ttl`` (the default life of a record)
    and ``supplied_ids``. With a generated id, a caller's ``id`` in create data is refused unless
    the model declares ``supplied_ids=True``; then a supplied id creates the record only if no
    record has that id (so a request body can never choose an id and overwrite a record).

    Generated ids follow creation order within a process (see ``ids.py``).

    Aliases: the record's HASH always stores each field under its Python attribute name, and
    records are read back by attribute name, whatever ``alias``, ``validation_alias``,
    ``serialization_alias`` or ``alias_generator`` say. Create data is validated as the model
    itself validates (by alias, and by name too if the model's config allows it); ``where``,
    ``order_by`` and update data name fields by attribute name, and an alias there is refused with
    an error that names the attribute to use.

    Limits on stored values (each refused with a ``ValidationError`` naming the field, before
    any I/O): text holding a lone surrogate, bytes that are not UTF-8, JSON values with NaN or
    infinities, NaN in an indexed or unique float or Decimal, and text longer than
    ``MAX_LEX_LENGTH`` (1,024) characters in a ``lex`` field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    __orm_options__: ClassVar[ModelOptions] = ModelOptions()
    # Loaded relations live in a slot, not a PrivateAttr: a private attribute makes Pydantic run
    # its private-state setup on every instance, doubling the cost of decoding a record.
    __slots__ = ("_orm_relations",)

    id: str = pydantic.Field(default_factory=new_ulid)

    def __init_subclass__(
        cls,
        *,
        key_prefix: str | None = None,
        unique_together: Iterable[Sequence[str]] = (),
        ttl: timedelta | None = None,
        supplied_ids: bool = False,
        max_life: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(unique_together, str) or any(isinstance(group, str) for group in unique_together):
            raise SchemaError(
                f"{cls.__name__}: unique_together takes groups of field names, like [('org', 'slug')]"
            )
        cls.__orm_options__ = ModelOptions(
            key_prefix=key_prefix,
            unique_together=tuple(tuple(fields) for fields in unique_together),
            ttl=ttl,
            supplied_ids=supplied_ids,
            max_life=max_life,
        )


def loaded_relations(instance: Model) -> dict[str, Any]:
    """The relations loaded onto one instance (created on first use, never copied or compared)."""
    try:
        relations: dict[str, Any] = instance._orm_relations  # type: ignore[attr-defined]
    except AttributeError:
        relations = {}
        attach_relations(instance, relations)
    return relations


def attach_relations(instance: Model, relations: dict[str, Any]) -> None:
    """Set a new instance's loaded relations at once: probing the empty slot first would go
    through Pydantic's ``__getattr__`` and an exception, several µs per instance."""
    object.__setattr__(instance, "_orm_relations", relations)
