"""Where the command line's schema and server come from.

The schema is found by import path, as uvicorn finds ``app:app``: ``package.module:attribute``,
imported with the current directory on ``sys.path``. The server is ``--url``, else ``REDIS_URL``,
else Upstash's ``UPSTASH_REDIS_REST_URL`` with ``UPSTASH_REDIS_REST_TOKEN``. A token is only ever
read from the environment (a command line shows up in ``ps`` and shell history) and never printed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from .._backends.protocol import info_field
from .._clients import SCHEMES
from .._model.model import Model
from .._model.schema import Schema
from .._orm import Orm, create_orm

UPSTASH_URL = "UPSTASH_REDIS_REST_URL"
UPSTASH_TOKEN = "UPSTASH_REDIS_REST_TOKEN"


def load_schema(target: str) -> Schema:
    """The ``Schema`` that ``module:attribute`` names (an ``Orm`` gives its schema)."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise click.BadParameter(f"{target!r}: expected MODULE:ATTRIBUTE, like app.models:schema")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise click.BadParameter(f"could not import module {module_name!r}") from exc
        raise click.BadParameter(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise click.BadParameter(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise click.BadParameter(f"{module_name!r} has no attribute {attribute!r}") from None
    if isinstance(found, Orm):
        return found.schema
    if isinstance(found, Schema):
        return found
    raise click.BadParameter(f"{target!r} is a {type(found).__name__}, not a redis_orm_async Schema")


def pick_models(schema: Schema, names: tuple[str, ...]) -> list[type[Model]]:
    """The schema's models named on the command line (every model when none is named)."""
    if not names:
        return list(schema.models)
    known = {meta.name: meta.model for meta in schema}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise click.BadParameter(
            f"no model named {', '.join(unknown)} in the schema (it has {', '.join(known)})",
            param_hint="MODEL",
        )
    return [known[name] for name in names]


@dataclass(frozen=True)
class Target:
    """A server to connect to: a redis:// URL, or an Upstash REST URL with its token."""

    url: str
    token: str | None = None

    @property
    def upstash(self) -> bool:
        return self.url.startswith(("http://", "https://"))

    def shown(self) -> str:
        """The URL as it may be printed: without a password (and the token is never part of it)."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        user = parts.username or ""
        host = parts.hostname or ""
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


def resolve_target(url: str | None, environ: Mapping[str, str]) -> Target:
    chosen = url or environ.get("REDIS_URL") or environ.get(UPSTASH_URL)
    if not chosen:
        raise click.UsageError(
            f"no server: pass --url, or set REDIS_URL (or {UPSTASH_URL} and {UPSTASH_TOKEN} for Upstash)"
        )
    target = Target(chosen)
    if target.upstash:
        token = environ.get(UPSTASH_TOKEN)
        if not token:
            raise click.UsageError(f"an Upstash REST URL needs its token in {UPSTASH_TOKEN}")
        return Target(chosen, token)
    scheme = chosen.split("://", 1)[0].lower() if "://" in chosen else ""
    if scheme not in SCHEMES:
        accepted = ", ".join(f"{name}://" for name in SCHEMES)
        raise click.UsageError(f"{target.shown()!r}: the URL scheme must be one of {accepted}")
    return target


async def _cluster_url(url: str) -> str:
    """``url`` as a ``redis+cluster://`` URL when the server behind it is a cluster node, so that
    any node's plain address finds the whole cluster."""
    scheme = url.split("://", 1)[0].lower()
    if SCHEMES.get(scheme) != "redis" or scheme == "unix":
        return url
    probe = create_orm(Schema([]), url=url, eviction="allow")
    async with probe:
        info = await probe.backend.execute(("INFO", "cluster"))
    if info_field(info, "cluster_enabled") != "1":
        return url
    return f"{scheme}+cluster" + url[len(scheme) :]


@contextlib.asynccontextmanager
async def open_orm(target: Target, schema: Schema) -> AsyncIterator[Orm]:
    """An ORM on the target that owns its client and closes it; connected, so that
    ``orm.backend.features`` already names the server. Eviction is reported by ``inspect``
    rather than warned about on every command."""
    url = target.url if target.upstash else await _cluster_url(target.url)
    async with create_orm(schema, url=url, token=target.token, eviction="allow") as orm:
        yield orm
