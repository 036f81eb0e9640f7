"""Adapter over ``redis.asyncio.Redis``.

Commands are packed and written on a pooled connection directly, the way redis-py's own pipeline
does it, so that a WATCH and its reads share one round trip and the MULTI/EXEC another. Replies
skip redis-py's per-command callbacks and reach the core in the one normalized shape. Errors are
converted here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import redis.asyncio as aioredis

_pack_command: Callable[[Command], bytes] | None
try:
    import hiredis

    _pack_command = hiredis.pack_command  # type: ignore[assignment]
except ImportError:  # pragma: no cover - hiredis comes with the redis[hiredis] dependency
    _pack_command = None
import redis.exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection

from .._errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    OrmError,
)
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

KIND = "redis"


def map_redis_error(exc: BaseException, kind: str = KIND) -> OrmError:
    """Convert a redis-py (or socket) error into the ORM's hierarchy."""
    if isinstance(exc, OrmError):
        return exc
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return AuthenticationError(f"{kind} refused the credentials", backend_kind=kind, cause=exc)
    if isinstance(exc, redis_errors.OutOfMemoryError) or "OOM command not allowed" in str(exc):
        return BackendError(
            f"{kind} is at its maxmemory limit and refused a write that needs memory; nothing was "
            "written (reads go on; free memory or raise maxmemory)",
            backend_kind=kind,
            cause=exc,
        )
    if isinstance(exc, redis_errors.ResponseError):
        text = str(exc)
        if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            return AuthenticationError(
                f"{kind} refused the credentials: {text.split(' ')[0]}", backend_kind=kind, cause=exc
            )
        return BackendError(f"{kind} error: {text}", backend_kind=kind, cause=exc)
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError | TimeoutError):
        return BackendUnavailableError(
            f"{kind} is unavailable: {exc or type(exc).__name__}", backend_kind=kind, cause=exc
        )
    return BackendError(f"{kind} error: {exc!r}", backend_kind=kind, cause=exc)


_NOTHING_TO_WRITE = Exception("nothing to write")


def pack(commands: Sequence[Command], connection: AbstractConnection) -> bytes | list[bytes]:
    """The commands in RESP, packed by hiredis's C packer (redis-py's asyncio connection packs in
    Python, eight times slower: it was the largest client cost of a write script call)."""
    if _pack_command is None:
        return connection.pack_commands(commands)
    return b"".join([_pack_command(command) for command in commands])


class PackedExchange:
    """The wire work both redis-py adapters share, on one connection the subclass leases.

    A batch is packed and written at once, then every reply is read: one round trip. A
    transaction is MULTI, the commands and EXEC in one such batch, and a guarded write is a WATCH
    with its reads in one round trip and the MULTI/EXEC in another, on the same connection.
    """

    kind: str = KIND
    stats: CommandStats
    features: BackendFeatures
    on_connect: ServerCheck | None = None
    _connected = False
    _loaded: set[str]
    _client: Any
    _owns_client: bool

    def _error(self, exc: BaseException) -> OrmError:
        return map_redis_error(exc, self.kind)

    def _raise_first(self, results: list[Any]) -> list[Any]:
        for item in results:
            if isinstance(item, Exception):
                raise self._error(item) from item
        return results

    @asynccontextmanager
    async def _lease(self, connection: AbstractConnection) -> AsyncIterator[None]:
        """Map a failed exchange's error; the caller releases the connection afterwards."""
        try:
            yield
        except OrmError:
            raise
        except BaseException as exc:
            # A failed or cancelled exchange leaves replies unread or a WATCH/MULTI open.
            await connection.disconnect()
            if not isinstance(exc, Exception):
                raise
            raise self._error(exc) from exc

    async def _round_trip(self, connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        """Write every command at once and read every reply; error replies are returned in place."""
        await connection.send_packed_command(pack(commands, connection))
        replies: list[Any] = []
        append, read = replies.append, connection.read_response
        for command in commands:
            try:
                append(normalize_reply(command, await read()))
            except redis_errors.ResponseError as exc:
                append(exc)
        return replies

    async def _exchange(self, connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        """One counted round trip; the first one of the adapter asks the server what it is."""
        if not self._connected:
            await self._learn_server(connection)
        self.stats.record(len(commands))
        return await self._round_trip(connection, commands)

    async def _learn_server(self, connection: AbstractConnection) -> None:
        """Version and eviction policy, once, on the connection about to be used (not counted in
        ``stats``, which counts the work of operations)."""
        replies = await self._round_trip(connection, [("INFO", "server"), ("INFO", "memory")])
        server, memory = self._raise_first(replies)
        self.features = server_features(self.features, server, memory)
        if self.on_connect is not None:
            self.on_connect(self.features)
        self._connected = True

    async def _transaction(
        self, connection: AbstractConnection, commands: Sequence[Command]
    ) -> list[Any] | None:
        replies = await self._exchange(connection, [("MULTI",), *commands, ("EXEC",)])
        queued, executed = replies[:-1], replies[-1]
        if isinstance(executed, Exception):
            queue_errors = [r for r in queued if isinstance(r, Exception)]
            raise self._error(queue_errors[0] if queue_errors else executed) from executed
        if executed is None:
            return None
        return self._raise_first(list(executed))

    async def _guard(
        self, connection: AbstractConnection, watch: Sequence[str], reads: Sequence[Command], plan: WritePlan
    ) -> list[Any] | Exception | None:
        """``guarded`` on one connection; the plan's own error is returned, for the caller to raise
        as it is once the connection is back in the pool."""
        head: list[Command] = [("WATCH", *watch)] if watch else []
        replies = await self._exchange(connection, [*head, *reads])
        try:
            writes = plan(self._raise_first(replies)[len(head) :])
        except Exception as exc:  # the plan's own error: the connection is still clean
            refusal: Exception = exc
        else:
            if writes:
                return await self._transaction(connection, writes)
            refusal = _NOTHING_TO_WRITE
        if watch:
            await self._exchange(connection, [("UNWATCH",)])
        return [] if refusal is _NOTHING_TO_WRITE else refusal

    async def execute(self, command: Command) -> Any:
        raise NotImplementedError

    async def ping(self) -> None:
        await self.execute(("PING",))

    async def aclose(self) -> None:
        """Close the client only if the adapter created it; a caller's client stays the caller's."""
        if self._owns_client:
            await self._client.aclose()

    async def eval(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """EVALSHA once this adapter has sent the script; EVAL (which loads it) the first time and
        after NOSCRIPT (a restart, a failover, SCRIPT FLUSH), so every call is one round trip
        but the one after a flush."""
        try:
            if script.sha in self._loaded:
                try:
                    return await self.execute(("EVALSHA", script.sha, len(keys), *keys, *args))
                except BackendError as exc:
                    if not isinstance(exc.cause, redis_errors.NoScriptError):
                        raise
            result = await self.execute(("EVAL", script.source, len(keys), *keys, *args))
            self._loaded.add(script.sha)
            return result
        except BackendError as exc:
            if not refuses_scripts(str(exc.cause)):
                raise
            self.features = dataclasses.replace(self.features, scripting=False)
            raise ScriptsRefused(
                f"{self.kind} refuses Lua scripts; writes fall back to WATCH/MULTI/EXEC",
                backend_kind=self.kind,
                cause=exc.cause,
            ) from exc


class RedisBackend(PackedExchange):
    """Runs ORM commands on a ``redis.asyncio.Redis`` connection pool it does not own."""

    def __init__(self, client: aioredis.Redis, *, owns_client: bool = False) -> None:
        self._client: aioredis.Redis = client
        self._pool = client.connection_pool
        limit = getattr(self._pool, "max_connections", None)
        # Wait for a pooled connection instead of failing with "Too many connections" when more
        # tasks write at once than the caller's pool allows.
        bounded = limit if isinstance(limit, int) and 0 < limit < 2**31 else 2**16
        self._slots = anyio.Semaphore(bounded, fast_acquire=True)
        self._owns_client = owns_client
        self._loaded = set()
        self.stats = CommandStats()
        self.features = BackendFeatures(kind=KIND)

    async def _checkout(self) -> AbstractConnection:
        try:
            connection: AbstractConnection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise map_redis_error(exc) from exc
        return connection

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AbstractConnection]:
        async with self._slots:
            connection = await self._checkout()
            try:
                async with self._lease(connection):
                    yield connection
            finally:
                await self._pool.release(connection)

    async def _batch(self, commands: Sequence[Command]) -> list[Any]:
        """One plain round trip; the hot path of every read, so it avoids context-manager layers."""
        async with self._slots:
            connection = await self._checkout()
            try:
                replies = await self._exchange(connection, commands)
            except BaseException as exc:
                await connection.disconnect()  # replies may be left unread
                await self._pool.release(connection)
                if isinstance(exc, Exception):
                    raise self._error(exc) from exc
                raise
            await self._pool.release(connection)
        return self._raise_first(replies)

    async def execute(self, command: Command) -> Any:
        return (await self._batch((command,)))[0]

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        return await self._batch(commands) if commands else []

    async def atomic(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        async with self._connection() as connection:
            result = await self._transaction(connection, commands)
        if result is None:
            raise BackendError("MULTI/EXEC was aborted without WATCH", backend_kind=KIND)
        return result

    async def guarded(
        self, watch: Sequence[str], reads: Sequence[Command], plan: WritePlan
    ) -> list[Any] | None:
        async with self._connection() as connection:
            outcome = await self._guard(connection, watch, reads, plan)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
