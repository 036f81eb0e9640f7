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

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from .._errors import RelationNotLoadedError
from .model import Model, loaded_relations

T = TypeVar("T", bound=Model)
RelationKind = Literal["belongs_to", "has_one", "has_many", "many_to_many"]


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
