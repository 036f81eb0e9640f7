"""Adapter over ``upstash_redis.asyncio.Redis`` (the ``upstash`` extra).

Every call is one HTTP request: a single command to the REST URL, a pipeline to ``/pipeline``
and an atomic batch to ``/multi-exec``. Commands go out through the client's raw ``execute``
with lowercase names and every argument already turned into text, which sidesteps the client's
quirks: its per-command result conversions match uppercase names only (so SET's ``False``,
SMEMBERS' lists and HGETALL's dicts never happen), and text arguments cannot hit its dropping of
falsy values, bools becoming ``true``, ``bytes`` raising ``TypeError`` or ``inf`` raising
``ValueError``.

**Writes** run as Lua scripts (one ``EVALSHA`` each, which Upstash runs atomically, like Redis).
Upstash's REST API has no WATCH, so a service that refused scripts could not be written to
safely: ``guarded`` says so instead of pretending.

**Errors** are converted in ``map_upstash_error``; the token is scrubbed from every message and
never shown in ``repr``. The client raises ``AttributeError`` when the server refuses a whole
batch (a bad token, an unreachable redis, EXECABORT); the adapter then asks with one PING why.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import httpx

from .._errors import AuthenticationError, BackendError, BackendUnavailableError, OrmError
from .._scripts import Script
from .protocol import (
    Arg,
    BackendFeatures,
    Command,
    CommandStats,
    ScriptsRefused,
    ServerCheck,
    WritePlan,
    normalize_reply,
    refuses_scripts,
    server_features,
)

try:
    from upstash_redis.errors import UpstashError
except ImportError:  # pragma: no cover - the adapter is only built for an upstash client

    class UpstashError(Exception):  # type: ignore[no-redef]
        """Stand-in so that error mapping works without the extra installed."""


KIND = "upstash"
T = TypeVar("T")

_UNAVAILABLE_REPLIES = ("ERR failed to talk to redis", "LOADING", "MASTERDOWN", "TRYAGAIN")
_AUTH_REPLIES = ("Unauthorized", "WRONGPASS", "NOAUTH", "NOPERM")


def arg_text(value: Any) -> str:
    """One argument as the text Redis stores: the REST API carries JSON, and only text is exact."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise BackendError("upstash cannot send a bool argument; encode it as text first", backend_kind=KIND)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise BackendError(
                "upstash cannot send binary data: its REST API carries UTF-8 text only", backend_kind=KIND
            ) from None
    if isinstance(value, float):
        if math.isnan(value):
            raise BackendError("upstash cannot send NaN as an argument", backend_kind=KIND)
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    raise BackendError(
        f"upstash cannot send a {type(value).__name__} argument; its REST API carries text only",
        backend_kind=KIND,
    )


def wire(command: Command) -> list[str]:
    """The JSON body of one command; the lowercase name keeps the client's result casts away."""
    if not command:
        raise BackendError("an empty command cannot be sent", backend_kind=KIND)
    return [arg_text(command[0]).lower(), *(arg_text(arg) for arg in command[1:])]


def _token_of(client: Any) -> str:
    headers = getattr(client, "_headers", None)
    header = headers.get("Authorization", "") if isinstance(headers, dict) else ""
    return header.removeprefix("Bearer ").strip() if isinstance(header, str) else ""


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _scrubbed_cause(exc: BaseException, secret: str) -> BaseException:
    """The original error, or a copy of it without the token if its message ever held it."""
    if not secret or secret not in str(exc):
        return exc
    try:
        return type(exc)(_scrub(str(exc), secret))
    except Exception:
        return Exception(f"{type(exc).__name__}: {_scrub(str(exc), secret)}")


def map_upstash_error(exc: BaseException, secret: str = "") -> OrmError:
    """Convert an upstash-redis, httpx or JSON error into the ORM's hierarchy, without the token.

    The result's ``cause`` is what to chain with ``raise ... from``: the original error, unless
    its message held the token.
    """
    if isinstance(exc, OrmError):
        return exc
    exc = _scrubbed_cause(exc, secret)
    if isinstance(exc, UpstashError):
        text = _scrub(str(exc), secret)
        if text.startswith(_AUTH_REPLIES):
            return AuthenticationError(
                f"upstash refused the token ({text.split(' ', 1)[0]}); check the REST URL and token",
                backend_kind=KIND,
                cause=exc,
            )
        if "OOM command not allowed" in text:
            return BackendError(
                "upstash is at its memory limit and refused a write that needs memory; nothing was written",
                backend_kind=KIND,
                cause=exc,
            )
        if text.startswith(_UNAVAILABLE_REPLIES):
            return BackendUnavailableError(f"upstash is unavailable: {text}", backend_kind=KIND, cause=exc)
        return BackendError(f"upstash error: {text}", backend_kind=KIND, cause=exc)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return BackendError(
            f"upstash url is not usable: {_scrub(str(exc), secret)}", backend_kind=KIND, cause=exc
        )
    if isinstance(exc, httpx.TransportError | OSError | TimeoutError):
        detail = _scrub(str(exc), secret) or "no detail"
        return BackendUnavailableError(
            f"upstash is unavailable: {type(exc).__name__}: {detail}", backend_kind=KIND, cause=exc
        )
    if isinstance(exc, json.JSONDecodeError):
        return BackendUnavailableError(
            "upstash is unavailable: it answered with a body that is not JSON", backend_kind=KIND, cause=exc
        )
    if isinstance(exc, UnicodeDecodeError):
        return BackendError(
            "upstash returned data that is not UTF-8 text; the REST API cannot carry binary values",
            backend_kind=KIND,
            cause=exc,
        )
    if isinstance(exc, UnicodeEncodeError):
        return BackendError(
            "upstash cannot send text that is not valid UTF-8 (a lone surrogate)",
            backend_kind=KIND,
            cause=exc,
        )
    if isinstance(exc, TypeError | ValueError):
        return BackendError(
            f"upstash could not send the command: {_scrub(str(exc), secret)}", backend_kind=KIND, cause=exc
        )
    if isinstance(exc, AttributeError | KeyError):
        return BackendError(
            "upstash refused the whole request (a malformed or unsupported command, EXECABORT, or an "
            "unexpected response)",
            backend_kind=KIND,
            cause=exc,
        )
    return BackendError(f"upstash error: {_scrub(repr(exc), secret)}", backend_kind=KIND, cause=exc)


class UpstashBackend:
    """Runs ORM commands over an ``upstash_redis.asyncio.Redis`` it does not own.

    Build the client with ``rest_retries=0``: its retry sleeps 3 s and can run a write twice,
    while the ORM retries write conflicts itself and reports failures as retryable errors.

    ``timeout`` (seconds) bounds each HTTP request, since the client itself waits forever; a
    request that runs out is ``BackendUnavailableError``, and like any timed-out write it may or
    may not have been applied.
    """

    def __init__(self, client: Any, *, timeout: float | None = None, owns_client: bool = False) -> None:
        self._client = client
        self._secret = _token_of(client)
        self._timeout = timeout
        self._owns_client = owns_client
        self._loaded: set[str] = set()
        self.stats = CommandStats()
        self.features = BackendFeatures(kind=KIND, watch=False)
        self.on_connect: ServerCheck | None = None
        self._connected = False

    def __repr__(self) -> str:
        url = str(getattr(self._client, "_url", "?")).split("?", 1)[0]
        return f"<UpstashBackend {_scrub(url, self._secret)} token=***>"

    async def _learn_server(self) -> None:
        """The server's version and eviction policy, once, where ``INFO`` answers (not counted in
        ``stats``); a service that refuses ``INFO`` keeps the defaults."""
        self._connected = True
        batch = self._client.pipeline()
        batch.execute(["info", "server"])
        batch.execute(["info", "memory"])
        try:
            server, memory = await self._send(batch.exec)
        except (AuthenticationError, BackendUnavailableError):
            self._connected = False
            raise
        except BackendError:
            return
        self.features = server_features(self.features, server, memory)
        if self.on_connect is not None:
            try:
                self.on_connect(self.features)
            except BaseException:
                self._connected = False
                raise

    def _map(self, exc: BaseException) -> OrmError:
        return map_upstash_error(exc, self._secret)

    async def _send(self, request: Callable[[], Awaitable[T]]) -> T:
        """One HTTP request, bounded by ``timeout``; errors leave here already converted."""
        try:
            if self._timeout is None:
                return await request()
            with anyio.fail_after(self._timeout):
                return await request()
        except OrmError:
            raise
        except Exception as exc:
            error = self._map(exc)
            raise error from error.cause

    async def execute(self, command: Command) -> Any:
        if not self._connected:
            await self._learn_server()
        body = wire(command)
        self.stats.record(1)
        reply = await self._send(lambda: self._client.execute(body))
        return normalize_reply(command, reply)

    async def _batch(self, commands: Sequence[Command], *, atomic: bool) -> list[Any]:
        if not self._connected:
            await self._learn_server()
        bodies = [wire(command) for command in commands]
        batch = self._client.multi() if atomic else self._client.pipeline()
        for body in bodies:
            batch.execute(body)
        self.stats.record(len(bodies))
        try:
            replies = await self._send(batch.exec)
        except BackendError as exc:
            if isinstance(exc.cause, AttributeError | KeyError):
                raise await self._explain_refusal(exc) from exc.cause
            raise
        if not isinstance(replies, list) or len(replies) != len(commands):
            got = len(replies) if isinstance(replies, list) else type(replies).__name__
            raise BackendError(
                f"upstash answered {len(commands)} commands with {got} replies", backend_kind=KIND
            )
        return [normalize_reply(command, reply) for command, reply in zip(commands, replies, strict=True)]

    async def _explain_refusal(self, refusal: BackendError) -> BackendError:
        """The client hides why a whole batch was refused; a PING tells a bad token or a dead
        redis (whose errors it reports) from a batch redis itself discarded."""
        try:
            await self.ping()
        except (AuthenticationError, BackendUnavailableError) as exc:
            return exc
        except BackendError:
            pass
        return refusal

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        return await self._batch(commands, atomic=False)

    async def atomic(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        return await self._batch(commands, atomic=True)

    async def guarded(
        self, watch: Sequence[str], reads: Sequence[Command], plan: WritePlan
    ) -> list[Any] | None:
        """Upstash's REST API has no WATCH: writes run as scripts, and a service that refuses
        scripts cannot be written to safely."""
        raise BackendError(
            "upstash has no WATCH, so writes need Lua scripts, and this server refuses them",
            backend_kind=KIND,
        )

    async def eval(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """EVALSHA once the script is known to be loaded; EVAL (which loads it) first and after
        NOSCRIPT, so a write costs one round trip from the very first one."""
        tail = (len(keys), *keys, *args)
        if script.sha in self._loaded:
            try:
                return await self.execute(("EVALSHA", script.sha, *tail))
            except BackendError as exc:
                if not str(exc.cause).startswith("NOSCRIPT"):
                    raise
        try:
            result = await self.execute(("EVAL", script.source, *tail))
        except BackendError as exc:
            if not refuses_scripts(str(exc.cause)):
                raise
            self.features = dataclasses.replace(self.features, scripting=False)
            raise ScriptsRefused(
                "upstash refuses Lua scripts, which its writes need", backend_kind=KIND, cause=exc.cause
            ) from exc
        self._loaded.add(script.sha)
        return result

    async def ping(self) -> None:
        await self.execute(("PING",))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._send(self._client.close)
