"""The ORM object: one schema over one backend, passed explicitly (no global state)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, TypeVar

from ._backends.protocol import Backend
from ._backends.runtime import backend_for
from ._capabilities import Capabilities
from ._engine.audit import AuditReport, audit_model
from ._engine.writes import WriteEngine
from ._errors import QueryError
from ._model.model import Model
from ._model.schema import Schema
from ._repository import Repository
from ._transaction import Transaction

M = TypeVar("M", bound=Model)


class Orm:
    """Holds the schema, the backend adapter and one repository per model."""

    def __init__(self, schema: Schema, backend: Backend, *, max_attempts: int = 64) -> None:
        if not isinstance(schema, Schema):
            raise QueryError(f"create_orm needs a Schema, got {type(schema).__name__}")
        self.schema = schema
        self.backend = backend
        self.engine = WriteEngine(backend, max_attempts=max_attempts)
        self._repos: dict[type[Model], Repository[Any]] = {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities.for_backend(self.backend.features)

    def repo(self, model: type[M]) -> Repository[M]:
        """The typed repository of one model of the schema."""
        repository = self._repos.get(model)
        if repository is None:
            repository = Repository(self.schema, self.backend, self.engine, model)
            self._repos[model] = repository
        return repository

    def transaction(self) -> Transaction:
        """A unit of work: writes queued inside ``async with`` land in one MULTI/EXEC at exit."""
        return Transaction(self.schema, self.engine)

    async def audit(self, model: type[Model]) -> AuditReport:
        """Compare a model's records with its index keys; ``report.ok`` when they agree."""
        return await audit_model(self.backend, self.schema.meta(model))

    async def sweep(self, model: type[Model] | None = None, *, batch: int = 1000) -> int:
        """Drain the expiry index of one model, or of every model; safe to run from a worker."""
        models = [model] if model is not None else list(self.schema.models)
        return sum([await self.repo(m).sweep(batch=batch) for m in models])

    async def push_schema(self) -> None:
        """A deliberate no-op: Redis has no schema to push; indexes are kept by each write."""

    async def apply_schema(self) -> None:
        """A deliberate no-op, like ``push_schema``."""

    async def ping(self) -> None:
        await self.backend.ping()

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Orm({self.schema!r}, backend={self.backend.features.kind!r})"


def create_orm(schema: Schema, client: Any, *, max_attempts: int = 64) -> Orm:
    """Build an ORM over a raw async client; no I/O happens until the first call."""
    return Orm(schema, backend_for(client), max_attempts=max_attempts)


async def create_orm_from_runtime(*, schema: Schema, client: Any, max_attempts: int = 64) -> Orm:
    """Detect the client, check that the server answers, and return the ORM."""
    backend = backend_for(client)
    detect = getattr(backend, "detect", None)
    if detect is not None:
        await detect()
    else:
        await backend.ping()
    return Orm(schema, backend, max_attempts=max_attempts)


async def bootstrap_database(*, schema: Schema, client: Any, max_attempts: int = 64) -> Orm:
    """One entry point that prepares and returns the ORM; schema pushing is a no-op on Redis."""
    orm = await create_orm_from_runtime(schema=schema, client=client, max_attempts=max_attempts)
    await orm.push_schema()
    return orm
