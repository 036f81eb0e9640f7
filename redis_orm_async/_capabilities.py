"""The capability object: what this ORM on this backend truly supports."""

from __future__ import annotations

from dataclasses import dataclass

from ._backends.protocol import BackendFeatures


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Frozen and truthful: checked by the test suite on every backend."""

    backend_kind: str
    supports_transactions: bool = False
    """No interactive rollback or isolation: ``orm.transaction()`` is a batched unit of work."""
    supports_joins: bool = False
    """Relations are batched follow-up reads, never a join."""
    supports_generated_integer_ids: bool = False
    supports_schema_qualified_names: bool = False
    supports_string_ids: bool = True
    supports_manual_integer_ids: bool = True
    supports_unique_constraints: bool = True
    supports_compound_unique: bool = True
    supports_secondary_indexes: bool = True
    supports_atomic_writes: bool = True
    """A record and all its index and claim changes land in one MULTI/EXEC."""
    supports_optimistic_concurrency: bool = True
    optimistic_guard: str = "script"
    """How a write stays atomic against concurrent writers: ``"script"`` (one server-side script
    reads, checks and writes), ``"watch"`` (WATCH/MULTI/EXEC, on a server that refuses scripts)."""
    supports_watch_fallback: bool = True
    """Writes still work, through WATCH/MULTI/EXEC, on a server that refuses Lua scripts."""
    supports_ttl: bool = True
    supports_atomic_increments: bool = True
    supports_relations: bool = True
    supports_cluster: bool = False
    supports_scripting: bool = True

    @classmethod
    def for_backend(cls, features: BackendFeatures) -> Capabilities:
        return cls(
            backend_kind=features.kind,
            optimistic_guard="script" if features.scripting else "watch",
            supports_cluster=features.cluster,
            supports_watch_fallback=features.watch,
            supports_scripting=features.scripting,
        )
