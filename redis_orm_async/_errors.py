"""The one exception hierarchy.

Every error the library raises is an ``OrmError``; errors of redis-py, upstash-redis and httpx are
converted at the backend adapter boundary and kept as ``cause``::

    OrmError
    ├── SchemaError                 a model or schema that cannot be stored
    ├── DataValidationError         data that does not fit the model (alias: ValidationError)
    ├── QueryError                  a query or argument the ORM cannot answer
    ├── RelationNotLoadedError      a relation read that was not loaded with include/select
    ├── NotFoundError               a record that must exist does not
    ├── UniqueConstraintError       a unique or compound-unique value is taken
    ├── TransactionConflictError    optimistic retries ran out (retryable)
    ├── RateLimitedError            a rate limit's window is used up (retryable, later)
    ├── UnsupportedClientError      create_orm got a client it cannot drive
    └── BackendError                the server said no
        ├── BackendUnavailableError unreachable, reset or timed out (retryable)
        └── AuthenticationError     wrong or missing credentials
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic_core import ValidationError as PydanticValidationError

T = TypeVar("T")

MAX_MESSAGE = 500
"""Characters of an error message: ours are short, and a caller's value must never make one long."""
MAX_MSG = 160
"""Characters of one entry's ``msg`` in ``DataValidationError.errors()``."""
MAX_LOC_PART = 64
"""Characters of one part of a ``loc``: a JSON key is submitted data too."""
MIN_SCRUBBED = 4
"""Inputs shorter than this are not searched for in messages (they would match ordinary words)."""


class OrmError(Exception):
    """Root of every error raised by redis_orm_async."""

    code: str = "orm_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend_kind: str | None = None,
        cause: BaseException | None = None,
        meta: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend_kind = backend_kind
        self.cause = cause
        self.meta: dict[str, Any] = dict(meta or {})
        if retryable is not None:
            self.retryable = retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class SchemaError(OrmError):
    """A model or schema declaration that the ORM refuses, naming the model and field."""

    code = "schema_invalid"


class DataValidationError(OrmError):
    """Data that does not fit its model, raised before anything is written.

    Named apart from ``pydantic.ValidationError``, which it wraps as ``cause`` and which a module
    importing both would shadow; ``ValidationError`` is this same class under its first name, so
    ``except redis_orm_async.ValidationError`` keeps working.

    What it carries is safe to log and to send to a client: ``errors()`` holds only each problem's
    ``type``, ``loc`` and a short ``msg``. Pydantic's ``input`` (the submitted value: a 5 MB text, a
    password hash), ``ctx`` and ``url`` are dropped, an input quoted inside a message is cut out,
    and every text is bounded. Errors raised for one field (``meta["field"]``) have that field in
    their ``loc``, so an ``update`` names the field exactly as a ``create`` does.
    """

    code = "validation_failed"

    def __init__(
        self,
        message: str,
        *,
        errors: Iterable[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        cause = kwargs.get("cause")
        if errors is None and isinstance(cause, PydanticValidationError):
            errors = cause.errors()
        raw = [dict(error) for error in errors or ()]
        inputs = [error["input"] for error in raw if "input" in error]
        field = (kwargs.get("meta") or {}).get("field")
        message = _scrubbed(_without_cause_text(message, cause, raw), inputs)
        super().__init__(_bounded(message, MAX_MESSAGE), **kwargs)
        details = [_safe_error(error, field) for error in raw]
        if not details:
            details = [{"type": "invalid", "loc": _loc((), field), "msg": _bounded(message, MAX_MSG)}]
        self._errors = details

    def errors(self) -> list[dict[str, Any]]:
        """One entry per problem: ``{"type", "loc", "msg"}``, never the submitted value."""
        return [dict(error) for error in self._errors]


ValidationError = DataValidationError
"""The first name of ``DataValidationError``, kept as an alias (the same class)."""


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scrubbed(text: str, inputs: Iterable[Any]) -> str:
    """``text`` without any of the submitted values quoted in it."""
    for value in inputs:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and len(value) >= MIN_SCRUBBED and value in text:
            text = text.replace(value, "…")
    return text


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:3]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "record"
        parts.append(f"{where}: {error.get('msg', '')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _without_cause_text(message: str, cause: Any, errors: list[dict[str, Any]]) -> str:
    """A message built around its cause's text loses what that text quotes: Pydantic's quotes
    each input (``input_value=...``) and gives way to a summary of the safe details; a plain
    error's that quotes a value (``invalid literal for int(): '...'``) gives way to its type."""
    if cause is None:
        return message
    text = str(cause)
    if not text or text not in message:
        return message
    if errors:
        return message.replace(text, _summary([_safe_error(e, None) for e in errors]))
    if "'" in text or '"' in text:
        return message.replace(text, f"a {type(cause).__name__}")
    return message


def _loc(loc: Any, field: Any) -> tuple[str | int, ...]:
    parts = tuple(loc) if isinstance(loc, tuple | list) else ()
    if isinstance(field, str) and field and (not parts or parts[0] != field):
        parts = (field, *parts)
    return tuple(p if isinstance(p, int) else _bounded(str(p), MAX_LOC_PART) for p in parts)


def _safe_error(error: Mapping[str, Any], field: Any) -> dict[str, Any]:
    inputs = [error["input"]] if "input" in error else []
    msg = _scrubbed(str(error.get("msg", "")), inputs)
    return {
        "type": _bounded(str(error.get("type", "invalid")), MAX_LOC_PART),
        "loc": _loc(error.get("loc", ()), field),
        "msg": _bounded(msg, MAX_MSG),
    }


class QueryError(OrmError):
    """A query the ORM cannot answer: unknown field, bad operator, wrong argument shape."""

    code = "query_unsupported"


class RelationNotLoadedError(OrmError):
    """A relation attribute was read without being loaded; the ORM never does hidden I/O."""

    code = "relation_not_loaded"


class NotFoundError(OrmError):
    """A record the caller required to exist does not."""

    code = "not_found"

    @classmethod
    def lookup(cls, model: str, where: Mapping[str, Any]) -> NotFoundError:
        """Names the fields looked up, never their values: a token lookup must not put the token
        into a log line or a response."""
        names = sorted(str(name) for name in where)
        return cls(f"no {model} matches the given {', '.join(names)}", meta={"model": model, "fields": names})


class UniqueConstraintError(OrmError):
    """A unique value is already claimed; ``meta`` names the constraint and its fields."""

    code = "unique_violation"

    @property
    def constraint(self) -> str:
        return str(self.meta.get("constraint", ""))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.meta.get("fields", ()))


class TransactionConflictError(OrmError):
    """Concurrent writers kept changing the guarded keys until the retry budget ran out."""

    code = "transaction_conflict"
    retryable = True


class RateLimitedError(OrmError):
    """A rate limit's current window is used up; retry after ``retry_after`` seconds.

    ``limit`` is the number of calls a window allows, ``remaining`` how many are left (0 here)
    and ``reset_after`` the seconds until the window ends.
    """

    code = "rate_limited"
    retryable = True

    @property
    def limit(self) -> int:
        return int(self.meta.get("limit", 0))

    @property
    def remaining(self) -> int:
        return int(self.meta.get("remaining", 0))

    @property
    def reset_after(self) -> float:
        return float(self.meta.get("reset_after", 0.0))

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait (at least 1), as an HTTP ``Retry-After`` says it."""
        return max(1, math.ceil(self.reset_after))


class UnsupportedClientError(OrmError):
    """``create_orm`` was given a client it cannot drive; the message says what to pass."""

    code = "unsupported_client"


class BackendError(OrmError):
    """The backend answered with an error that has no more specific meaning."""

    code = "backend_error"


class BackendUnavailableError(BackendError):
    """The backend could not be reached or did not answer in time."""

    code = "backend_unavailable"
    retryable = True


class AuthenticationError(BackendError):
    """The backend refused the credentials; the secret itself is never echoed."""

    code = "authentication_failed"


class EvictionPolicyWarning(UserWarning):
    """The server may evict keys, and with them the index and claim keys the ORM keeps."""


def tag_backend_errors(cls: type[T]) -> type[T]:
    """Give every ``OrmError`` that escapes a public coroutine of ``cls`` the backend kind.

    Errors raised before any I/O (validation, query shape) are found by the repository, not by an
    adapter; this stamps them with ``self._backend.features.kind`` so that every error says which
    backend it concerns, without each method saying so.
    """
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _tagged(member))
    return cls


def _tagged(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except OrmError as exc:
            if exc.backend_kind is None:
                exc.backend_kind = self._backend.features.kind
            raise

    return wrapper
