"""The one exception hierarchy.

Every error the library raises is an ``OrmError``; errors of redis-py, upstash-redis and httpx are
converted at the backend adapter boundary and kept as ``cause``::

    OrmError
    ├── SchemaError                 a model or schema that cannot be stored
    ├── ValidationError             data that does not fit the model
    ├── QueryError                  a query or argument the ORM cannot answer
    │   └── IndexNotBuiltError      the query needs an index older records have no entries in
    ├── RelationNotLoadedError      a relation read that was not loaded with include/select
    ├── NotFoundError               a record that must exist does not
    ├── UniqueConstraintError       a unique or compound-unique value is taken
    ├── TransactionConflictError    optimistic retries ran out (retryable)
    ├── UnsupportedClientError      create_orm got a client it cannot drive
    └── BackendError                the server said no
        ├── BackendUnavailableError unreachable, reset or timed out (retryable)
        └── AuthenticationError     wrong or missing credentials
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


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


class ValidationError(OrmError):
    """Data that does not fit its model; ``errors()`` keeps Pydantic's per-field details."""

    code = "validation_failed"

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self._errors = list(errors or [])

    def errors(self) -> list[dict[str, Any]]:
        return list(self._errors)


class QueryError(OrmError):
    """A query the ORM cannot answer: unknown field, bad operator, wrong argument shape."""

    code = "query_unsupported"


class IndexNotBuiltError(QueryError):
    """The query needs an index or unique that was declared after records existed and has not
    been backfilled: answering would silently leave those records out. ``meta["indexes"]`` names
    them; ``redis-orm-async reindex`` (or ``orm.reindex(Model)``) builds them."""

    code = "index_not_built"


class RelationNotLoadedError(OrmError):
    """A relation attribute was read without being loaded; the ORM never does hidden I/O."""

    code = "relation_not_loaded"


class NotFoundError(OrmError):
    """A record the caller required to exist does not."""

    code = "not_found"


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
