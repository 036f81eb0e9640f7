"""The backend protocol: the small surface every adapter (redis-py, Upstash, Cluster) implements.

The core builds commands; an adapter only executes them and absorbs its client's quirks. Results
come back in one shape whatever the client: RESP2 values with ``str`` for bulk and status replies,
``int``, ``None`` and nested ``list`` (never bytes, sets or floats), except that ``HGETALL`` always
gives a ``dict[str, str]``: records are read that way on every hot path, and a RESP3 map is
already one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .._errors import BackendError
from .._scripts import Script

Arg = str | int | float
Command = tuple[Arg, ...]
WritePlan = Callable[[list[Any]], Sequence[Command]]


@dataclass
class CommandStats:
    """Commands and network round trips sent through one adapter, for tests and benchmarks."""

    commands: int = 0
    round_trips: int = 0
    setup_round_trips: int = 0
    """Round trips of what the ORM learns once per process and model (which indexes are built),
    kept out of ``round_trips`` so that it counts the work of operations, as the server's version,
    learned on first contact, is not counted either."""

    def snapshot(self) -> tuple[int, int]:
        return self.commands, self.round_trips

    def record(self, commands: int) -> None:
        self.commands += commands
        self.round_trips += 1

    def as_setup(self, commands: int) -> None:
        """Move the round trip just recorded (of ``commands`` commands) to ``setup_round_trips``."""
        self.commands -= commands
        self.round_trips -= 1
        self.setup_round_trips += 1


@dataclass(frozen=True, slots=True)
class BackendFeatures:
    """What one backend can do; folded into the ORM's capability object."""

    kind: str
    watch: bool = True
    """WATCH/MULTI/EXEC works, so writes have a fallback when the server refuses scripts."""
    cluster: bool = False
    scripting: bool = True
    """False once the server has refused a script (an ACL without @scripting, say)."""
    server_kind: str = ""
    """``"redis"`` or ``"valkey"`` (from ``INFO server``); "" until the server has been asked."""
    server_version: tuple[int, ...] = ()
    """The server's own version: Valkey's, not the Redis version it reports for compatibility."""
    maxmemory_policy: str = ""

    def at_least(self, *, redis: tuple[int, ...], valkey: tuple[int, ...] = (7, 2)) -> bool:
        """Whether the server has a command that Redis added in ``redis`` (and Valkey, which forked
        from Redis 7.2.4, in ``valkey``); False while the version is unknown, so that a command
        newer than the 6.2 baseline is only sent to a server known to have it."""
        if not self.server_version:
            return False
        wanted = valkey if self.server_kind == "valkey" else redis
        return self.server_version >= wanted


class ScriptsRefused(BackendError):
    """The server refuses Lua scripts; callers switch to their plain-command path."""


ServerCheck = Callable[[BackendFeatures], None]
"""Called once an adapter has learned what its server is; it may warn, or raise to refuse it."""


def info_field(info: Any, name: str) -> str:
    """One ``name:value`` line of an ``INFO`` reply ("" when absent); a client that parsed the
    reply into a mapping (redis-py's ``info()``) is read as it is."""
    if isinstance(info, dict):
        return str(info.get(name, ""))
    head = name + ":"
    for line in str(info).splitlines():
        if line.startswith(head):
            return line[len(head) :].strip()
    return ""


def server_features(base: BackendFeatures, server_info: Any, memory_info: Any) -> BackendFeatures:
    """``base`` with what ``INFO server`` and ``INFO memory`` say (6.2 is the baseline).

    Valkey answers ``server_name:valkey`` and its own ``valkey_version`` next to a
    ``redis_version`` it keeps at 7.2.4 for clients that check it."""
    kind = "valkey" if info_field(server_info, "server_name") == "valkey" else "redis"
    text = info_field(server_info, f"{kind}_version") or info_field(server_info, "redis_version")
    version = tuple(int(part) for part in text.split(".") if part.isdigit())
    policy = info_field(memory_info, "maxmemory_policy")
    return dataclasses.replace(base, server_kind=kind, server_version=version, maxmemory_policy=policy)


def refuses_scripts(reply: str) -> bool:
    """Whether an error reply to EVAL/EVALSHA says that scripts are not allowed at all."""
    text = reply.lower()
    refused = ("noperm", "no permission", "unknown command", "disabled")
    return any(word in text for word in refused) and "eval" in text


@runtime_checkable
class Backend(Protocol):
    features: BackendFeatures
    stats: CommandStats
    on_connect: ServerCheck | None
    """Run once the adapter has asked the server what it is (before its first command's reply)."""

    async def execute(self, command: Command) -> Any:
        """Run one command."""
        ...

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Run commands in one round trip, not atomically; raise on the first error reply."""
        ...

    async def atomic(self, commands: Sequence[Command]) -> list[Any]:
        """Run commands in one MULTI/EXEC, in one round trip."""
        ...

    async def guarded(
        self, watch: Sequence[str], reads: Sequence[Command], plan: WritePlan
    ) -> list[Any] | None:
        """Read, let ``plan`` turn the reads into writes, and apply them in one MULTI/EXEC only
        if the reads still hold; ``None`` means another writer interfered and the caller retries.

        ``plan`` may raise (a unique violation, say) to abort with nothing written, or return no
        commands to write nothing. ``watch`` names the keys whose change must abort the write.
        """
        ...

    async def eval(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run a Lua script by its SHA, loading it again after ``NOSCRIPT``."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


def normalize(value: Any) -> Any:
    """Bring a raw reply into the one result shape (bytes to str, RESP3 maps and sets flattened)."""
    kind = type(value)
    if kind is bytes:
        return value.decode()
    if kind is list or kind is tuple:
        return [item if type(item) is str else normalize(item) for item in value]
    if kind is dict:
        return [normalize(part) for pair in value.items() for part in pair]
    if kind is set or kind is frozenset:
        return sorted(normalize(item) for item in value)
    if kind is float:
        return repr(value)
    return value


def normalize_reply(command: Command, reply: Any) -> Any:
    """``normalize`` for the reply of ``command``: HGETALL as a dict, and RESP3's nested
    ``[member, score]`` pairs flattened to the RESP2 shape."""
    kind = type(reply)
    if kind is str or kind is int or reply is None:
        return reply  # most replies, and every one a decoding client gives for a write
    if kind is dict and command[0] == "HGETALL" and (not reply or type(next(iter(reply))) is str):
        return reply  # a record from a decoding RESP3 client, the hot path of every read
    if command[0] == "HGETALL":
        return _record(reply)
    value = normalize(reply)
    if (
        isinstance(value, list)
        and value
        and isinstance(value[0], list)
        and str(command[0]).upper().startswith("Z")
        and any(isinstance(arg, str) and arg.upper() == "WITHSCORES" for arg in command)
    ):
        return [item for pair in value for item in pair]
    return value


def _record(reply: Any) -> dict[str, str]:
    items = reply.items() if type(reply) is dict else zip(reply[::2], reply[1::2], strict=True)
    return {
        (key.decode() if type(key) is bytes else key): (value.decode() if type(value) is bytes else value)
        for key, value in items
    }


def pairs_to_dict(flat: list[Any]) -> dict[str, Any]:
    """``HGETALL``-style ``[k1, v1, k2, v2]`` to a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
