"""Adapter over ``redis.asyncio.RedisCluster``.

Every key of one model shares its hash tag, so each of the model's keys lives in one slot. The
adapter routes each command by its key's slot to the primary that owns it, and then works exactly
like the single-server adapter on that node's own connections: a WATCH and its reads in one round
trip, the MULTI/EXEC in another. A pipeline of reads may span models, so slots and nodes: it is
split by node, one round trip per node, all nodes at the same time. A unit of work (``atomic``,
``guarded``) must stay in one slot, that is within one model's keys; anything else is refused with
a ``QueryError`` before anything is written, because Redis Cluster cannot run a MULTI/EXEC across
slots.

A ``MOVED``/``ASK`` redirect (a slot was resharded) refreshes the topology and retries the
exchange once; nothing of a redirected exchange was applied, so the retry is safe.
``CLUSTERDOWN``/``TRYAGAIN`` surface as a retryable ``BackendUnavailableError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection

from .._errors import BackendError, BackendUnavailableError, OrmError, QueryError
from .protocol import BackendFeatures, Command, CommandStats, WritePlan
from .redispy import PackedExchange, map_redis_error

KIND = "redis-cluster"
T = TypeVar("T")

SCRIPT_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})
KEYLESS = frozenset(
    {"TIME", "PING", "ECHO", "INFO", "MULTI", "EXEC", "DISCARD", "UNWATCH", "SCRIPT", "COMMAND", "LASTSAVE"}
)
"""Commands with no key, whose answer does not depend on the primary that runs them."""
KEY_AFTER_SUBCOMMAND = frozenset({"OBJECT", "MEMORY"})


@dataclass
class ClusterCommandStats(CommandStats):
    """``round_trips`` counts waits: a pipeline split over k nodes runs k exchanges concurrently
    and costs one round trip of latency, so it adds 1 there and k to ``node_round_trips``."""

    node_round_trips: int = 0

    def record(self, commands: int) -> None:
        super().record(commands)
        self.node_round_trips += 1

    def as_setup(self, commands: int) -> None:
        super().as_setup(commands)
        self.node_round_trips -= 1

    def record_fanout(self, commands: int, nodes: int) -> None:
        self.commands += commands
        self.round_trips += 1
        self.node_round_trips += nodes


def routing_key(command: Command) -> str | None:
    """The key whose slot decides where ``command`` runs, or None for a keyless command.

    ``SCAN`` routes by its MATCH pattern: the model's hash tag in the pattern names the one slot
    all of the model's keys live in.
    """
    name = str(command[0]).upper()
    if name in SCRIPT_COMMANDS:
        numkeys = command[2] if len(command) > 3 else 0
        return str(command[3]) if str(numkeys).isdigit() and int(numkeys) > 0 else None
    if name == "SCAN":
        words = [str(arg).upper() for arg in command]
        if "MATCH" in words[:-1]:
            return str(command[words.index("MATCH") + 1])
        return None
    if name in KEYLESS or len(command) < 2:
        return None
    if name in KEY_AFTER_SUBCOMMAND:
        return str(command[2]) if len(command) > 2 else None
    return str(command[1])


def has_hash_tag(key: str) -> bool:
    """Whether Redis hashes only part of ``key`` (a non-empty ``{...}``)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return start >= 0 and end > start + 1


class _Redirected(BackendUnavailableError):
    """A MOVED/ASK reply: the slot moved, the exchange applied nothing, retry after a refresh."""


def map_cluster_error(exc: BaseException) -> OrmError:
    """``map_redis_error`` plus the replies only a cluster gives."""
    if isinstance(exc, OrmError):
        return exc
    if isinstance(exc, redis_errors.AskError):  # MovedError is an AskError
        verb = "MOVED" if isinstance(exc, redis_errors.MovedError) else "ASK"
        return _Redirected(
            f"{KIND}: slot {exc.slot_id} is being moved to {exc.node_addr} ({verb}); retry",
            backend_kind=KIND,
            cause=exc,
        )
    if isinstance(exc, redis_errors.ClusterDownError | redis_errors.TryAgainError):
        return BackendUnavailableError(f"{KIND} is unavailable: {exc}", backend_kind=KIND, cause=exc)
    if isinstance(exc, redis_errors.ClusterCrossSlotError):
        return QueryError(
            f"on Redis Cluster one command must stay within one model's keys: {exc}",
            backend_kind=KIND,
            cause=exc,
        )
    if isinstance(exc, redis_errors.RedisClusterException):
        # Topology discovery failed; redis-py keeps the real reason (refused credentials, say).
        reason = exc.__cause__
        if isinstance(reason, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
            return map_redis_error(reason, KIND)
        return BackendUnavailableError(f"{KIND} is unavailable: {exc}", backend_kind=KIND, cause=exc)
    return map_redis_error(exc, KIND)


class ClusterBackend(PackedExchange):
    """Runs ORM commands on the nodes of a ``redis.asyncio.RedisCluster`` it does not own."""

    kind = KIND

    def __init__(self, client: aioredis.RedisCluster, *, owns_client: bool = False) -> None:
        self._client: aioredis.RedisCluster = client
        self._owns_client = owns_client
        self._limits: dict[str, anyio.Semaphore] = {}
        self._stale = False
        self._loaded = set()
        self.cluster_stats = ClusterCommandStats()
        """``stats`` typed with the per-node counter too."""
        self.stats: CommandStats = self.cluster_stats
        self.features = BackendFeatures(kind=KIND, cluster=True)

    def _error(self, exc: BaseException) -> OrmError:
        return map_cluster_error(exc)

    async def _topology(self) -> None:
        """Discover the nodes on first use, and again after a node failed or a slot moved."""
        try:
            if self._stale:
                await self._client.nodes_manager.initialize()
                self._stale = False
            else:
                await self._client.initialize()
        except Exception as exc:
            raise self._error(exc) from exc

    def _node_of(self, slot: int | None) -> ClusterNode:
        if slot is None:
            return self._client.get_default_node()
        try:
            return self._client.nodes_manager.get_node_from_slot(slot)
        except redis_errors.SlotNotCoveredError as exc:
            self._stale = True
            raise self._error(exc) from exc

    def _slot(self, key: str) -> int:
        return self._client.keyslot(key)

    def _unit_slot(self, commands: Iterable[Command], watch: Sequence[str] = ()) -> int | None:
        """The one slot a unit of work touches (None if keyless); refuse one that spans slots."""
        slots: dict[int, str] = {}
        for key in [*watch, *(routing_key(command) for command in commands)]:
            if key is not None:
                slots.setdefault(self._slot(key), key)
        if len(slots) > 1:
            spans = ", ".join(f"{slot} ({key})" for slot, key in sorted(slots.items()))
            raise QueryError(
                "on Redis Cluster a unit of work must stay within one model's keys, so that its "
                f"MULTI/EXEC runs in one slot; this one touches slots {spans}",
                backend_kind=KIND,
                meta={"slots": sorted(slots)},
            )
        return next(iter(slots), None)

    @asynccontextmanager
    async def _connection(self, node: ClusterNode) -> AsyncIterator[AbstractConnection]:
        limit = self._limits.get(node.name)
        if limit is None:
            # Wait for one of the node's connections instead of failing with MaxConnectionsError.
            limit = self._limits[node.name] = anyio.Semaphore(max(1, node.max_connections), fast_acquire=True)
        async with limit:
            try:
                connection = node.acquire_connection()
            except Exception as exc:
                raise self._error(exc) from exc
            try:
                async with self._lease(connection):
                    await node.disconnect_if_needed(connection)  # marked stale by a topology refresh
                    if not self._connected:
                        await self._learn_server(connection)
                    yield connection
            finally:
                node.release(connection)

    async def _on_slot(self, slot: int | None, work: Callable[[AbstractConnection], Awaitable[T]]) -> T:
        """Run one exchange on the slot's primary; after a redirect, refresh and retry once."""
        for attempt in range(2):
            await self._topology()
            try:
                async with self._connection(self._node_of(slot)) as connection:
                    return await work(connection)
            except _Redirected:
                self._stale = True
                if attempt:
                    raise
            except BackendUnavailableError:
                self._stale = True  # the node may have failed over: rediscover on the next call
                raise
        raise AssertionError("unreachable")

    async def execute(self, command: Command) -> Any:
        key = routing_key(command)
        if str(command[0]).upper() in SCRIPT_COMMANDS and key is not None:
            self._unit_slot((), [str(k) for k in command[3 : 3 + int(command[2])]])
        if str(command[0]).upper() == "SCAN" and not (key and has_hash_tag(key)):
            raise QueryError(
                f"on Redis Cluster {str(command[0]).upper()} needs a pattern with a hash tag, so "
                "that it runs on the one node that holds the model's keys",
                backend_kind=KIND,
            )

        async def work(connection: AbstractConnection) -> Any:
            return self._raise_first(await self._exchange(connection, [command]))[0]

        return await self._on_slot(None if key is None else self._slot(key), work)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """One round trip per node, all nodes at once; replies in the order of ``commands``."""
        if not commands:
            return []
        replies: list[Any] = [None] * len(commands)
        pending = list(range(len(commands)))
        for attempt in range(2):
            await self._topology()
            await self._fan_out(commands, pending, replies)
            pending = [i for i in pending if isinstance(replies[i], redis_errors.AskError)]
            if not pending:
                break
            self._stale = True
            if attempt:
                break
        return self._raise_first(replies)

    async def _fan_out(self, commands: Sequence[Command], positions: list[int], replies: list[Any]) -> None:
        """Send the commands at ``positions``, grouped by node, and store their replies in place."""
        groups = self._by_node(commands, positions)
        self.cluster_stats.record_fanout(len(positions), len(groups))
        failures: list[Exception] = []

        async def run(node: ClusterNode, group: list[int]) -> None:
            try:
                async with self._connection(node) as connection:
                    got = await self._round_trip(connection, [commands[i] for i in group])
            except Exception as exc:  # kept, so that a failed node is not an ExceptionGroup
                failures.append(exc)
                return
            for position, reply in zip(group, got, strict=True):
                replies[position] = reply

        if len(groups) == 1:
            await run(*groups[0])
        else:
            async with anyio.create_task_group() as task_group:
                for node, group in groups:
                    task_group.start_soon(run, node, group)
        if failures:
            if isinstance(failures[0], BackendUnavailableError):
                self._stale = True
            raise failures[0]

    def _by_node(
        self, commands: Sequence[Command], positions: list[int]
    ) -> list[tuple[ClusterNode, list[int]]]:
        """Positions grouped by the primary that owns their key; keyless ones join the first."""
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        keyless: list[int] = []
        for position in positions:
            key = routing_key(commands[position])
            if key is None:
                keyless.append(position)
                continue
            node = self._node_of(self._slot(key))
            groups.setdefault(node.name, (node, []))[1].append(position)
        if keyless:
            if not groups:
                node = self._node_of(None)
                groups[node.name] = (node, [])
            next(iter(groups.values()))[1].extend(keyless)
        return list(groups.values())

    async def atomic(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        slot = self._unit_slot(commands)
        result = await self._on_slot(slot, lambda connection: self._transaction(connection, commands))
        if result is None:
            raise BackendError("MULTI/EXEC was aborted without WATCH", backend_kind=KIND)
        return result

    async def guarded(
        self, watch: Sequence[str], reads: Sequence[Command], plan: WritePlan
    ) -> list[Any] | None:
        slot = self._unit_slot(reads, watch)
        if slot is None:
            # Nothing to watch or read from a key: the writes alone decide the node.
            writes = plan(await self.pipeline(reads))
            return await self.atomic(writes) if writes else []

        def confined(replies: list[Any]) -> Sequence[Command]:
            writes = plan(replies)
            self._unit_slot([*writes, *reads], watch)
            return writes

        async def work(connection: AbstractConnection) -> list[Any] | Exception | None:
            outcome = await self._guard(connection, watch, reads, confined)
            if isinstance(outcome, _Redirected):
                raise outcome  # the reads were redirected, not refused by the plan: retry
            return outcome

        outcome = await self._on_slot(slot, work)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
