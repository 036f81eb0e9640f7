"""The ORM object: one schema over one backend, passed explicitly (no global state)."""

from __future__ import annotations

import warnings
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from ._backends.protocol import Backend, BackendFeatures
from ._backends.runtime import backend_for
from ._capabilities import Capabilities
from ._engine.audit import AuditReport, RepairReport, audit_model, repair_model
from ._engine.built import IndexCheck, index_names, mark_built
from ._engine.progress import QUIET, Progress
from ._engine.reindex import ReindexReport, reindex_model
from ._engine.stats import ModelStats, model_stats
from ._engine.writes import WriteEngine
from ._errors import BackendError, EvictionPolicyWarning, QueryError
from ._model.model import Model
from ._model.schema import Schema
from ._repository import Repository
from ._transaction import Transaction

M = TypeVar("M", bound=Model)


EvictionRule = Literal["warn", "refuse", "allow"]
EVICTION_RULES: tuple[str, ...] = ("warn", "refuse", "allow")


class Orm:
    """Holds the schema, the backend adapter and one repository per model.

    ``eviction`` says what to do when the server may evict keys (a ``maxmemory-policy`` other than
    ``noeviction``): an evicted index or claim key silently loses records from queries and lets a
    unique value be taken twice. ``"warn"`` (the default) emits ``EvictionPolicyWarning`` when the
    ORM first talks to the server, ``"refuse"`` raises ``BackendError`` on every call, ``"allow"``
    trusts you (``repair`` rebuilds what an eviction destroyed).
    """

    def __init__(
        self, schema: Schema, backend: Backend, *, max_attempts: int = 64, eviction: EvictionRule = "warn"
    ) -> None:
        if not isinstance(schema, Schema):
            raise QueryError(f"create_orm needs a Schema, got {type(schema).__name__}")
        if eviction not in EVICTION_RULES:
            raise QueryError(f"eviction must be one of {', '.join(EVICTION_RULES)}, not {eviction!r}")
        self.schema = schema
        self.backend = backend
        self.engine = WriteEngine(backend, max_attempts=max_attempts)
        self.eviction = eviction
        backend.on_connect = self._check_server
        self._repos: dict[type[Model], Repository[Any]] = {}
        self._index_check = IndexCheck(backend)

    def _check_server(self, features: BackendFeatures) -> None:
        policy = features.maxmemory_policy
        if self.eviction == "allow" or policy in ("", "noeviction"):
            return
        message = (
            f"the {features.kind} server's maxmemory-policy is {policy!r}: it may evict index and "
            "claim keys, so queries can miss records and a unique value can be taken twice; set "
            "maxmemory-policy noeviction, or run orm.repair(Model) after an eviction"
        )
        if self.eviction == "refuse":
            raise BackendError(message, backend_kind=features.kind)
        warnings.warn(EvictionPolicyWarning(message), stacklevel=2)

    async def connect(self) -> Self:
        """Talk to the server once: check the connection, learn its version and eviction policy."""
        await self.backend.ping()
        return self

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities.for_backend(self.backend.features)

    def repo(self, model: type[M]) -> Repository[M]:
        """The typed repository of one model of the schema."""
        repository = self._repos.get(model)
        if repository is None:
            repository = Repository(
                self.schema, self.backend, self.engine, model, index_check=self._index_check
            )
            self._repos[model] = repository
        return repository

    def transaction(self) -> Transaction:
        """A unit of work: writes queued inside ``async with`` land in one MULTI/EXEC at exit."""
        return Transaction(self.schema, self.engine)

    async def audit(self, model: type[Model], *, progress: Progress = QUIET) -> AuditReport:
        """Compare a model's records with its index keys; ``report.ok`` when they agree."""
        return await audit_model(self.backend, self.schema.meta(model), progress)

    async def repair(
        self, model: type[Model], *, batch: int = 500, progress: Progress = QUIET
    ) -> RepairReport:
        """Rebuild a model's index entries and claims from its records, in batches, safe while
        writes go on: after an eviction, a key deleted by hand, or an index added to a model that
        already has records. ``audit`` is clean afterwards, and every index whose values no two
        records share is marked built."""
        meta = self.schema.meta(model)
        report = await repair_model(self.engine, meta, batch=batch, progress=progress)
        failed = {f"u:{constraint}" for constraint, _ in report.conflicts}
        await mark_built(self.backend, meta, [name for name in index_names(meta) if name not in failed])
        return report

    async def reindex(
        self,
        model: type[Model],
        *,
        batch: int = 500,
        rebuild_all: bool = False,
        progress: Progress = QUIET,
    ) -> ReindexReport:
        """Backfill the indexes and uniques that the model's older records have no entries in
        (an index or unique added to a model with data), in batches, safe while writes go on and
        resumable where an earlier run stopped. A new unique that existing records violate is
        refused before anything is written: ``report.conflicts`` lists the ids."""
        meta = self.schema.meta(model)
        return await reindex_model(self.engine, meta, batch=batch, rebuild_all=rebuild_all, progress=progress)

    async def inspect(self, model: type[Model], *, progress: Progress = QUIET) -> ModelStats:
        """What one model holds on the server: records, index keys, claims, expiry backlog,
        approximate memory, and which indexes are built; reads only."""
        return await model_stats(self.backend, self.schema.meta(model), progress)

    async def sweep(
        self, model: type[Model] | None = None, *, batch: int = 1000, progress: Progress = QUIET
    ) -> int:
        """Drain the expiry index of one model, or of every model; safe to run from a worker."""
        models = [model] if model is not None else list(self.schema.models)
        swept = 0
        for each in models:
            progress.start(f"sweep {each.__name__}", None)
            swept += await self.repo(each).sweep(batch=batch, progress=progress)
        progress.finish()
        return swept

    async def push_schema(self) -> None:
        """A deliberate no-op: Redis has no schema to push; indexes are kept by each write."""

    async def apply_schema(self) -> None:
        """A deliberate no-op, like ``push_schema``."""

    async def ping(self) -> None:
        await self.backend.ping()

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Orm({self.schema!r}, backend={self.backend.features.kind!r})"


def create_orm(
    schema: Schema, client: Any, *, max_attempts: int = 64, eviction: EvictionRule = "warn"
) -> Orm:
    """Build an ORM over a raw async client; no I/O happens until the first call."""
    return Orm(schema, backend_for(client), max_attempts=max_attempts, eviction=eviction)


async def create_orm_from_runtime(
    *, schema: Schema, client: Any, max_attempts: int = 64, eviction: EvictionRule = "warn"
) -> Orm:
    """Detect the client, check that the server answers, and return the ORM."""
    orm = Orm(schema, backend_for(client), max_attempts=max_attempts, eviction=eviction)
    return await orm.connect()


async def bootstrap_database(
    *, schema: Schema, client: Any, max_attempts: int = 64, eviction: EvictionRule = "warn"
) -> Orm:
    """One entry point that prepares and returns the ORM; schema pushing is a no-op on Redis."""
    orm = await create_orm_from_runtime(
        schema=schema, client=client, max_attempts=max_attempts, eviction=eviction
    )
    await orm.push_schema()
    return orm
