"""TTL arguments, read one way everywhere.

``ttl=UNSET`` (the default) means "what this call does by default": a create takes the model's
``ttl``, an update keeps the record's current expiry, and a touch takes the model's ``ttl``.
``ttl=None`` always means "never expires", and a ``timedelta`` is a life from the server's clock.
Anything else is refused before any I/O, so ``ttl=5`` cannot be misread as seconds or as
milliseconds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal

from .._errors import ValidationError

MAX_TTL = timedelta(days=365 * 1000)
"""Far beyond any session or token, and still an exact millisecond count for the server."""


class Unset:
    """The type of ``UNSET``: an argument the caller did not give."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset()

TtlArg = timedelta | None | Unset
Expiry = int | Literal["keep", "persist"]
"""A write's expiry: milliseconds of life from now, keep the current one, or none."""


_ZERO = timedelta(0)
_MILLISECOND = timedelta(milliseconds=1)


def ttl_millis(model: str, ttl: object) -> int:
    """A positive ``timedelta`` as whole milliseconds (at least 1)."""
    if not isinstance(ttl, timedelta):
        raise ValidationError(
            f"{model}: ttl must be a datetime.timedelta, None or UNSET, not {type(ttl).__name__} "
            "(for five seconds write timedelta(seconds=5))",
            meta={"model": model, "field": "ttl"},
        )
    if ttl <= _ZERO or ttl > MAX_TTL:
        raise ValidationError(
            f"{model}: ttl must be positive and at most {MAX_TTL.days} days, got {ttl}",
            meta={"model": model, "field": "ttl"},
        )
    return max(1, ttl // _MILLISECOND)


def create_expiry(model: str, ttl: object, default: timedelta | None) -> int | None:
    """Milliseconds of life for a new record, or None when it never expires."""
    if isinstance(ttl, Unset):
        return None if default is None else ttl_millis(model, default)
    if ttl is None:
        return None
    return ttl_millis(model, ttl)


def update_expiry(model: str, ttl: object) -> Expiry:
    """What an update does to a record's expiry."""
    if isinstance(ttl, Unset):
        return "keep"
    if ttl is None:
        return "persist"
    return ttl_millis(model, ttl)


def touch_expiry(model: str, ttl: object, default: timedelta | None) -> Expiry:
    """What a touch does: the model's ttl unless one is given; None makes the record permanent."""
    if isinstance(ttl, Unset):
        if default is None:
            raise ValidationError(
                f"{model} has no default ttl; pass ttl= to touch", meta={"model": model, "field": "ttl"}
            )
        return ttl_millis(model, default)
    if ttl is None:
        return "persist"
    return ttl_millis(model, ttl)
