"""Clients the ORM builds from a URL, and so owns and closes.

The URL's scheme picks the client, as ``encode/databases`` picks a driver; each driver is imported
only when its scheme is used, so an extra that is not installed costs nothing until then:

- ``redis://``, ``rediss://`` (TLS), ``unix://``: ``redis.asyncio.Redis``;
- ``redis+cluster://``, ``rediss+cluster://``: ``redis.asyncio.RedisCluster`` (any node's
  address; the others are discovered);
- ``https://`` (``http://`` for a local REST server): ``upstash_redis.asyncio.Redis``, with the
  ``token`` argument or ``UPSTASH_REDIS_REST_TOKEN``.

With no URL at all, ``UPSTASH_REDIS_REST_URL`` and ``UPSTASH_REDIS_REST_TOKEN`` are read, which is
how Upstash hands its credentials to serverless platforms. A URL's password or token never
appears in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._backends.protocol import Backend
from ._errors import AuthenticationError, UnsupportedClientError

UPSTASH_URL_ENV = "UPSTASH_REDIS_REST_URL"
UPSTASH_TOKEN_ENV = "UPSTASH_REDIS_REST_TOKEN"

SCHEMES: Mapping[str, str] = {
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "redis+cluster": "cluster",
    "rediss+cluster": "cluster",
    "https": "upstash",
    "http": "upstash",
}


def redacted(url: str) -> str:
    """The URL without its user, password and query (which may hold a password or a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def url_from_environment() -> str:
    url = os.environ.get(UPSTASH_URL_ENV, "")
    if not url:
        raise UnsupportedClientError(
            f"create_orm needs a client or a url: pass url='redis://host:6379' (or rediss://, "
            f"redis+cluster://, an Upstash https:// URL), a client, or set {UPSTASH_URL_ENV} and "
            f"{UPSTASH_TOKEN_ENV}"
        )
    return url


def owned_backend(url: str, *, token: str | None, options: Mapping[str, Any]) -> Backend:
    """An adapter over a new client for ``url``; the adapter closes the client in ``aclose``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    kind = SCHEMES.get(scheme)
    if kind is None:
        accepted = ", ".join(f"{name}://" for name in SCHEMES)
        raise UnsupportedClientError(
            f"cannot connect to {redacted(url)}: the URL scheme must be one of {accepted}"
        )
    if kind == "upstash":
        return _upstash(url, token, options)
    if token is not None:
        raise UnsupportedClientError(
            f"token= is for Upstash's https:// URLs; a {scheme}:// URL carries its password itself"
        )
    if kind == "cluster":
        return _cluster(url, scheme, options)
    return _redis(url, options)


def _redis(url: str, options: Mapping[str, Any]) -> Backend:
    import redis.asyncio as aioredis

    from ._backends.redispy import RedisBackend

    try:
        client = aioredis.Redis.from_url(url, **{"decode_responses": True, **options})
    except (ValueError, TypeError) as exc:
        raise UnsupportedClientError(f"cannot connect to {redacted(url)}: {type(exc).__name__}") from None
    return RedisBackend(client, owns_client=True)


def _cluster(url: str, scheme: str, options: Mapping[str, Any]) -> Backend:
    import redis.asyncio as aioredis

    from ._backends.cluster import ClusterBackend

    plain = scheme.removesuffix("+cluster") + url[len(scheme) :]
    try:
        client = aioredis.RedisCluster.from_url(plain, **{"decode_responses": True, **options})
    except (ValueError, TypeError) as exc:
        raise UnsupportedClientError(f"cannot connect to {redacted(url)}: {type(exc).__name__}") from None
    return ClusterBackend(client, owns_client=True)


def _upstash(url: str, token: str | None, options: Mapping[str, Any]) -> Backend:
    try:
        from upstash_redis.asyncio import Redis as UpstashRedis
    except ImportError:
        raise UnsupportedClientError(
            "an https:// URL is Upstash's REST API: pip install 'redis-orm-async[upstash]'"
        ) from None
    from ._backends.upstash import UpstashBackend

    token = token if token is not None else os.environ.get(UPSTASH_TOKEN_ENV, "")
    if not token:
        raise AuthenticationError(
            f"Upstash needs its REST token: pass token=... or set {UPSTASH_TOKEN_ENV}", backend_kind="upstash"
        )
    # rest_retries=0: the client's own retry sleeps 3 s and may send a write twice; the ORM
    # retries write conflicts itself and reports a failed request as retryable.
    settings: dict[str, Any] = {"rest_retries": 0, "allow_telemetry": False, **options}
    client = UpstashRedis(url=url, token=token, **settings)
    return UpstashBackend(client, owns_client=True)
