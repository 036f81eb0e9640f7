"""Testing aids: a private embedded redis-server and a local Upstash-compatible REST server."""

from ._embedded import EmbeddedRedis, find_redis_server, free_port

__all__ = ["EmbeddedRedis", "find_redis_server", "free_port"]
