"""Testing aids: a private embedded redis-server (or valkey-server), a local Redis Cluster and a
local Upstash-compatible REST server; ``pytest_plugin`` turns them into pytest fixtures.

All are for tests, demos and local development, never for production traffic.
"""

from ._cluster import LocalRedisCluster
from ._embedded import EmbeddedRedis, find_redis_server, find_valkey_server, free_port
from ._upstash_server import UpstashRestServer

__all__ = [
    "EmbeddedRedis",
    "LocalRedisCluster",
    "UpstashRestServer",
    "find_redis_server",
    "find_valkey_server",
    "free_port",
]
