"""Client detection: which adapter drives the client a caller hands over."""

from __future__ import annotations

from typing import Any

from .._errors import UnsupportedClientError
from .protocol import Backend

ACCEPTED = (
    "redis.asyncio.Redis or upstash_redis.asyncio.Redis (or redis.asyncio.RedisCluster, or an adapter "
    "implementing redis_orm_async.Backend)"
)


def _qualified(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def backend_for(client: Any) -> Backend:
    """Wrap a raw client in its adapter, refusing sync and unknown clients with a clear message."""
    module = type(client).__module__
    name = type(client).__name__
    if module.startswith("redis.asyncio"):
        if name == "Redis":
            from .redispy import RedisBackend

            return RedisBackend(client)
        if name == "RedisCluster":
            from .cluster import ClusterBackend

            return ClusterBackend(client)
    if module.startswith("upstash_redis.asyncio") and name == "Redis":
        from .upstash import UpstashBackend

        return UpstashBackend(client)
    if module.startswith("redis.") or module == "redis":
        suggestion = "redis.asyncio.RedisCluster" if "Cluster" in name else "redis.asyncio.Redis"
        raise UnsupportedClientError(
            f"{_qualified(client)} is a synchronous client; redis_orm_async is async-only, "
            f"pass {suggestion} instead"
        )
    if module.startswith("upstash_redis"):
        raise UnsupportedClientError(
            f"{_qualified(client)} is a synchronous client; redis_orm_async is async-only, "
            "pass upstash_redis.asyncio.Redis instead"
        )
    if isinstance(client, Backend):
        return client
    raise UnsupportedClientError(f"cannot drive a {_qualified(client)}; pass {ACCEPTED}")
