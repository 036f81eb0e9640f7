"""Field expressions: what ``User.age`` is at run time, so that ``User.age >= 10`` is a condition.

Type checkers read ``User.age`` as the field's own type (``int``), as SQLModel does: a misspelled
field is an attribute error and a comparison with a value of the wrong type is an operator error,
with no plugin. At run time the model's metaclass answers a field's name on the class with a
``Col``, whose operators build ``Condition`` trees. These are plain data; ``_query.parse`` checks
and normalizes them against the model exactly as it does the dict form, so both forms share one
query model and one set of semantics.

Methods that the field's own type lacks (``in_``, ``contains``, ``desc``, ``range``) are reached
through ``col(User.age)``, typed ``Col[int]``, or the functions ``in_(User.age, [...])``,
``desc(User.age)`` and friends; ``User.name.startswith("a")`` needs neither, since ``str`` has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from .._errors import QueryError

T = TypeVar("T")

_NO_TRUTH = (
    "a condition has no truth value: combine conditions with & | ~ (or and_, or_, not_), not with "
    "and/or/not, and test membership with in_(), not with `in`"
)


class Condition:
    """A test of one record, built from field expressions; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    def __and__(self, other: Condition | bool) -> Condition:
        return AllOf((self, other))

    def __rand__(self, other: Condition | bool) -> Condition:
        return AllOf((other, self))

    def __or__(self, other: Condition | bool) -> Condition:
        return AnyOf((self, other))

    def __ror__(self, other: Condition | bool) -> Condition:
        return AnyOf((other, self))

    def __invert__(self) -> Condition:
        return NotOf(self)

    def __bool__(self) -> bool:
        raise QueryError(_NO_TRUTH)


class Compare(Condition):
    """One field compared with one operand, with the dict form's operator names and meaning."""

    __slots__ = ("field", "model", "op", "value")

    def __init__(self, model: type[Any], field: str, op: str, value: Any) -> None:
        self.model = model
        self.field = field
        self.op = op
        self.value = value

    def __repr__(self) -> str:
        return f"{self.model.__name__}.{self.field} {self.op} {self.value!r}"


class Range(Condition):
    """redisca's ``range``: ``minval <= field <= maxval`` (either bound may be None). When it is
    a read's only condition it also orders by the field and pages by ``start`` and ``num``."""

    __slots__ = ("field", "maxval", "minval", "model", "num", "start")

    def __init__(
        self, model: type[Any], field: str, minval: Any, maxval: Any, start: int, num: int | None
    ) -> None:
        self.model = model
        self.field = field
        self.minval = minval
        self.maxval = maxval
        self.start = start
        self.num = num

    def __repr__(self) -> str:
        return f"{self.model.__name__}.{self.field} in [{self.minval!r}, {self.maxval!r}]"


class AllOf(Condition):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Condition | bool, ...]) -> None:
        self.items = items


class AnyOf(Condition):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Condition | bool, ...]) -> None:
        self.items = items


class NotOf(Condition):
    __slots__ = ("item",)

    def __init__(self, item: Condition | bool) -> None:
        self.item = item


class Order:
    """One ``order_by`` key: ``desc(User.age)`` or ``col(User.age).desc()``."""

    __slots__ = ("descending", "field", "model")

    def __init__(self, model: type[Any], field: str, descending: bool) -> None:
        self.model = model
        self.field = field
        self.descending = descending

    def __repr__(self) -> str:
        return f"{self.model.__name__}.{self.field} {'desc' if self.descending else 'asc'}"


class Col(Generic[T]):
    """A model's field on the class (``User.age``): comparing it builds a ``Condition``."""

    __slots__ = ("model", "name")

    def __init__(self, model: type[Any], name: str) -> None:
        self.model = model
        self.name = name

    def _compare(self, op: str, value: Any) -> Compare:
        return Compare(self.model, self.name, op, value)

    def __eq__(self, value: T | None) -> Condition:  # type: ignore[override]
        return self._compare("eq", value)

    def __ne__(self, value: T | None) -> Condition:  # type: ignore[override]
        return self._compare("not", value)

    def __lt__(self, value: T) -> Condition:
        return self._compare("lt", value)

    def __le__(self, value: T) -> Condition:
        return self._compare("lte", value)

    def __gt__(self, value: T) -> Condition:
        return self._compare("gt", value)

    def __ge__(self, value: T) -> Condition:
        return self._compare("gte", value)

    def __hash__(self) -> int:
        return hash((self.model, self.name))

    def __bool__(self) -> bool:
        raise QueryError(_NO_TRUTH)

    def in_(self, values: Iterable[T | None]) -> Condition:
        """Equal to one of ``values`` (None matches null)."""
        return self._compare("in", _listed(values))

    def not_in(self, values: Iterable[T | None]) -> Condition:
        return NotOf(self.in_(values))

    def contains(self, text: str) -> Condition:
        """The stored text holds ``text`` (text fields; never matches null)."""
        return self._compare("contains", text)

    def startswith(self, prefix: str) -> Condition:
        """The stored text starts with ``prefix`` (text fields and string ids)."""
        return self._compare("startswith", prefix)

    def range(
        self, minval: T | None = None, maxval: T | None = None, start: int = 0, num: int | None = None
    ) -> Condition:
        """redisca's range: ``minval <= field <= maxval``; alone in a read, it also orders by
        this field and skips ``start`` records, returning at most ``num``."""
        return Range(self.model, self.name, minval, maxval, start, num)

    def asc(self) -> Order:
        return Order(self.model, self.name, False)

    def desc(self) -> Order:
        return Order(self.model, self.name, True)

    def __repr__(self) -> str:
        return f"{self.model.__name__}.{self.name}"


def _listed(values: Iterable[Any]) -> Any:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return values  # refused with the field's name when the query is parsed
    return list(values)


def col(field: T) -> Col[T]:
    """A field expression typed for checkers: ``col(User.age).in_([1, 2])``, ``.desc()``."""
    return _col(field, "col")


def _col(field: Any, caller: str) -> Col[Any]:
    if not isinstance(field, Col):
        raise QueryError(
            f"{caller}() takes a model's field on its class, like {caller}(User.age), "
            f"not {type(field).__name__}"
        )
    return field


def and_(*conditions: Condition | bool) -> Condition:
    """Every condition holds (no conditions: everything matches)."""
    return AllOf(conditions)


def or_(*conditions: Condition | bool) -> Condition:
    """Some condition holds (no conditions: nothing matches)."""
    return AnyOf(conditions)


def not_(condition: Condition | bool) -> Condition:
    """The condition does not hold; a type checker reads ``~(User.age > 1)`` as ``~bool``, so
    this is the spelling it accepts."""
    return NotOf(condition)


def in_(field: T, values: Iterable[T | None]) -> Condition:
    return _col(field, "in_").in_(values)


def contains(field: str | None, text: str) -> Condition:
    return _col(field, "contains").contains(text)


def startswith(field: str | None, prefix: str) -> Condition:
    return _col(field, "startswith").startswith(prefix)


def asc(field: object) -> Order:
    return _col(field, "asc").asc()


def desc(field: object) -> Order:
    return _col(field, "desc").desc()
