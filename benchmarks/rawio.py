"""What every raw line shares: a counted connection to the server and its Lua scripts.

The raw lines talk to one pooled connection at a time, write all of an exchange's commands at
once and read all the replies (one round trip, as the ORM's adapter does), and count their own
round trips and commands. Their scripts live as ``.lua`` files in ``benchmarks/lua/``: each is
loaded once, run by its SHA1 with ``EVALSHA``, and loaded again after a ``NOSCRIPT`` reply (a
``SCRIPT FLUSH`` or a server restart), which costs two extra round trips once.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError

Arg = str | int | float
Command = tuple[Arg, ...]

LUA_DIR = Path(__file__).resolve().parent / "lua"


@dataclass(frozen=True)
class Script:
    """One ``benchmarks/lua/<name>.lua`` file, read once, and the SHA1 that runs it."""

    name: str
    source: str = field(repr=False)
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    @classmethod
    def load(cls, name: str) -> Script:
        return cls(name, (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))

    def call(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


ScriptCall = tuple[Script, Sequence[str], Sequence[Arg]]
"""A script and its keys and arguments, for ``RawRedis.run``."""


class RawError(Exception):
    """A refusal raised while the connection is still clean (every reply read, no WATCH left),
    so the connection goes back to the pool rather than being closed."""


class RawRedis:
    """A connection pool plus the count of round trips and commands sent through it."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._pool = client.connection_pool
        self.round_trips = 0
        self.commands = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AbstractConnection]:
        connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            yield connection
        except RawError:
            raise
        except BaseException:
            await connection.disconnect()  # replies may be unread, or a WATCH still open
            raise
        finally:
            await self._pool.release(connection)

    async def exchange(self, connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        """Send every command at once and read every reply: one round trip. An error reply is
        returned in its place, as an exception, for the caller to raise or handle."""
        self.round_trips += 1
        self.commands += len(commands)
        await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    async def checked(self, connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        """``exchange``, raising the first error reply."""
        replies = await self.exchange(connection, commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def run(self, connection: AbstractConnection, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run scripts by SHA in one round trip; after ``NOSCRIPT``, load them and run those again."""
        commands = [script.call(keys, args) for script, keys, args in calls]
        replies = await self.exchange(connection, commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            scripts = {calls[i][0].name: calls[i][0] for i in missing}
            await self.load(connection, scripts.values())
            again = await self.exchange(connection, [commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def load(self, connection: AbstractConnection, scripts: Iterable[Script]) -> None:
        """``SCRIPT LOAD`` each script, checking that the server names it by the SHA we computed."""
        scripts = list(scripts)
        shas = await self.checked(connection, [("SCRIPT", "LOAD", script.source) for script in scripts])
        for script, sha in zip(scripts, shas, strict=True):
            if sha != script.sha:
                raise RuntimeError(f"{script.name}.lua loaded as {sha}, expected {script.sha}")


def pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A flat field/value list (a script's HGETALL reply) as a dict."""
    items = iter(flat)
    return dict(zip(items, items, strict=True))
