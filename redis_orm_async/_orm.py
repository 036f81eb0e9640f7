"""The ORM object: one schema over one backend, passed explicitly (no global state).

Which constructor to use:

- an application: ``create_orm(schema, url="redis://...")`` (or ``rediss://``,
  ``redis+cluster://``, an Upstash ``https://`` URL with ``token=``). The ORM builds its client
  and owns it: ``await orm.aclose()``, ``async with orm:`` or the FastAPI lifespan closes it.
- a client you already have: ``create_orm(schema, client)``. The client stays yours: the ORM
  never closes it, and you close it after the ORM is done.
- ``create_orm_from_runtime(schema=..., client=...)`` and ``bootstrap_database(...)``: the
  runtime-helper path of the TypeScript ORM this one ports, for code written against it; they
  detect the client like ``create_orm`` and also check that the server answers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from ._backends.protocol import Backend, BackendFeatures
from ._backends.runtime import backend_for
from ._capabilities import Capabilities
from ._clients import owned_backend, url_from_environment
from ._engine.audit import AuditReport, RepairReport, audit_model, repair_model
from ._engine.built import IndexCheck, index_names, mark_built
from ._engine.progress import QUIET, Progress
from ._engine.reindex import ReindexReport, reindex_model
from ._engine.stats import ModelStats, model_stats
from ._engine.writes import WriteEngine
from ._errors import BackendError, EvictionPolicyWarning, QueryError, SchemaError, UnsupportedClientError
from ._model.model import Model
from ._model.schema import ModelMeta, Schema
from ._ratelimit import Rate, RateLimitBucket, RateLimiter
from ._repository import Repository
from ._session import OrmSession
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
        self,
        schema: Schema,
        backend: Backend,
        *,
        max_attempts: int = 64,
        eviction: EvictionRule = "warn",
        owns_client: bool = False,
    ) -> None:
        if not isinstance(schema, Schema):
            raise QueryError(f"create_orm needs a Schema, got {type(schema).__name__}")
        if eviction not in EVICTION_RULES:
            raise QueryError(f"eviction must be one of {', '.join(EVICTION_RULES)}, not {eviction!r}")
        self.schema = schema
        self.backend = backend
        self.engine = WriteEngine(backend, max_attempts=max_attempts)
        self.eviction = eviction
        self.owns_client = owns_client
        """Whether ``aclose`` closes the client: True when the ORM built it from a URL."""
        backend.on_connect = self._check_server
        self._repos: dict[type[Model], Repository[Any]] = {}
        self._own_schema: Schema | None = None
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

    def _schema_of(self, model: type[Model]) -> Schema:
        """The schema holding ``model``: the app's, or the ORM's own for the models it brings
        (rate-limit buckets), in the app's namespace; their key prefix must be free."""
        if model is not RateLimitBucket or model in self.schema.models:
            return self.schema
        if self._own_schema is None:
            own = Schema([RateLimitBucket], namespace=self.schema.namespace)
            prefix = own.meta(RateLimitBucket).keys.prefix
            for meta in self.schema:
                if meta.keys.prefix == prefix:
                    raise SchemaError(
                        f"{meta.name} uses the key prefix {prefix!r}, which the ORM's rate limiter "
                        "keeps its buckets under; give the model another key_prefix"
                    )
            self._own_schema = own
        return self._own_schema

    def _meta(self, model: type[Model]) -> ModelMeta:
        return self._schema_of(model).meta(model)

    def repo(self, model: type[M]) -> Repository[M]:
        """The typed repository of one model of the schema."""
        repository = self._repos.get(model)
        if repository is None:
            repository = Repository(
                self._schema_of(model), self.backend, self.engine, model, index_check=self._index_check
            )
            self._repos[model] = repository
        return repository

    def transaction(self) -> Transaction:
        """A unit of work: writes queued inside ``async with`` land in one MULTI/EXEC at exit."""
        return Transaction(self.schema, self.engine, self._index_check)

    def session(self) -> OrmSession:
        """An identity map with change tracking, written in one atomic step when ``async with``
        exits without an error (see ``OrmSession``)."""
        return OrmSession(self.schema, self.backend, self.engine, self._index_check)

    def rate_limiter(self, rate: str | Rate, *, name: str) -> RateLimiter:
        """``rate`` (``"20/minute"``) per key, counted in buckets named ``<name>:<key>`` that
        expire on the server's clock; one round trip per call (see ``RateLimiter``)."""
        return RateLimiter(self.repo(RateLimitBucket), rate, name=name)

    async def audit(self, model: type[Model], *, progress: Progress = QUIET) -> AuditReport:
        """Compare a model's records with its index keys; ``report.ok`` when they agree."""
        return await audit_model(self.backend, self._meta(model), progress)

    async def repair(
        self, model: type[Model], *, batch: int = 500, progress: Progress = QUIET
    ) -> RepairReport:
        """Rebuild a model's index entries and claims from its records, in batches, safe while
        writes go on: after an eviction, a key deleted by hand, or an index added to a model that
        already has records. ``audit`` is clean afterwards, and every index whose values no two
        records share is marked built."""
        meta = self._meta(model)
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
        """Backfill the indexes, uniques and field defaults that the model's older records lack
        (an index, a unique or a field added to a model with data), in batches, safe while writes
        go on and resumable where an earlier run stopped. A new unique that existing records
        violate is refused before anything is written: ``report.conflicts`` lists the ids."""
        meta = self._meta(model)
        return await reindex_model(self.engine, meta, batch=batch, rebuild_all=rebuild_all, progress=progress)

    async def inspect(self, model: type[Model], *, progress: Progress = QUIET) -> ModelStats:
        """What one model holds on the server: records, index keys, claims, expiry backlog,
        approximate memory, and which indexes are built; reads only."""
        return await model_stats(self.backend, self._meta(model), progress)

    async def sweep(
        self, model: type[Model] | None = None, *, batch: int = 1000, progress: Progress = QUIET
    ) -> int:
        """Drain the expiry index of one model, or of every model (the rate limiter's buckets
        too, once it is used); safe to run from a worker."""
        models = [model] if model is not None else list(self.schema.models)
        if model is None and self._own_schema is not None:
            models.extend(self._own_schema.models)
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
        """Close the client if the ORM built it (``owns_client``); a client passed in stays open,
        for its owner to close."""
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        """Check the connection; an ORM that owns its client closes it if the check fails."""
        try:
            return await self.connect()
        except BaseException:
            await self.aclose()
            raise

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
    schema: Schema,
    client: Any = None,
    *,
    url: str | None = None,
    token: str | None = None,
    client_options: Mapping[str, Any] | None = None,
    max_attempts: int = 64,
    eviction: EvictionRule = "warn",
) -> Orm:
    """Build an ORM; no I/O happens until the first call.

    ``url=`` (what an application passes): the ORM builds its own client from the URL and owns
    it, so ``aclose()`` and ``async with orm:`` close it. ``redis://`` and ``rediss://`` (TLS) give
    a ``redis.asyncio.Redis``, ``redis+cluster://`` (``rediss+cluster://``) a
    ``redis.asyncio.RedisCluster``, and an Upstash ``https://`` URL an ``upstash_redis`` client
    with ``token`` (or ``UPSTASH_REDIS_REST_TOKEN``); with neither ``client`` nor ``url``,
    ``UPSTASH_REDIS_REST_URL`` and ``UPSTASH_REDIS_REST_TOKEN`` are read. ``client_options`` go to
    the client's constructor (``socket_timeout``, ``max_connections``, ...).

    ``client``: a raw ``redis.asyncio.Redis``, ``RedisCluster`` or ``upstash_redis.asyncio.Redis``
    that stays the caller's; the ORM never closes it.
    """
    if client is not None:
        if url is not None or token is not None or client_options is not None:
            raise UnsupportedClientError(
                "create_orm takes a client or a url (with token and client_options), not both"
            )
        return Orm(schema, backend_for(client), max_attempts=max_attempts, eviction=eviction)
    if not isinstance(schema, Schema):
        raise QueryError(f"create_orm needs a Schema, got {type(schema).__name__}")
    if eviction not in EVICTION_RULES:
        raise QueryError(f"eviction must be one of {', '.join(EVICTION_RULES)}, not {eviction!r}")
    if url is not None and not isinstance(url, str):
        raise UnsupportedClientError(f"url must be a str, not {type(url).__name__}")
    backend = owned_backend(url or url_from_environment(), token=token, options=client_options or {})
    return Orm(schema, backend, max_attempts=max_attempts, eviction=eviction, owns_client=True)


async def create_orm_from_runtime(
    *, schema: Schema, client: Any, max_attempts: int = 64, eviction: EvictionRule = "warn"
) -> Orm:
    """Detect the client, check that the server answers, and return the ORM (the seed's
    runtime-helper path; the client stays the caller's)."""
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
