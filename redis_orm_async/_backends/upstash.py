"""Adapter over ``upstash_redis.asyncio.Redis`` (the ``upstash`` extra).

Every call is one HTTP request: a single command to the REST URL, a pipeline to ``/pipeline``
and an atomic batch to ``/multi-exec``. Commands go out through the client's raw ``execute``
with lowercase names and every argument already turned into text, which sidesteps the client's
quirks: its per-command result conversions match uppercase names only (so SET's ``False``,
SMEMBERS' lists and HGETALL's dicts never happen), and text arguments cannot hit its dropping of
falsy values, bools becoming ``true``, ``bytes`` raising ``TypeError`` or ``inf`` raising
``ValueError``.

**The guard.** Upstash's REST API has no WATCH, so ``guarded`` keeps the read-then-write
invariant with a compare-and-apply Lua script (Upstash runs EVAL atomically, like Redis):

1. the reads go out in one ``/pipeline`` request, and ``plan`` turns their replies into writes;
2. one ``EVALSHA`` of ``GUARD_SCRIPT`` carries the same reads, the replies the pipeline saw
   (type-tagged, see ``expect``) and the writes; the script re-runs the reads, and only if every
   reply is unchanged does it run the writes, all inside one atomic script run;
3. otherwise it answers "conflict", ``guarded`` returns ``None`` and the write engine re-reads
   and retries, exactly as after a failed WATCH.

That is two round trips per write, as with WATCH + MULTI/EXEC on redis-py. It compares values,
not versions, so a key that changed and changed back does not abort the write: harmless, since
the plan depends only on the values it read. ``TIME`` is not re-run (it always differs), and a
HASH is compared as a map, since its field order may change while it is rehashed.

**Errors** are converted in ``map_upstash_error``; the token is scrubbed from every message and
never shown in ``repr``. The client raises ``AttributeError`` when the server refuses a whole
batch (a bad token, an unreachable redis, EXECABORT); the adapter then asks with one PING why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import httpx

from .._errors import AuthenticationError, BackendError, BackendUnavailableError, OrmError
from .._scripts import Script, load
from .protocol import Arg, BackendFeatures, Command, CommandStats, WritePlan, normalize_reply

try:
    from upstash_redis.errors import UpstashError
except ImportError:  # pragma: no cover - the adapter is only built for an upstash client

    class UpstashError(Exception):  # type: ignore[no-redef]
        """Stand-in so that error mapping works without the extra installed."""


KIND = "upstash"
T = TypeVar("T")

GUARD_SCRIPT = load("guard")
"""Compare-and-apply: re-run the reads, compare with what the caller saw, then run the writes.

ARGV holds ``#reads``, then per read a mode (``x`` skip, else the compare tag's command) with
``#args, args...`` and the expected reply, then ``#writes`` and per write ``#args, args...``.
Writes run with ``pcall`` so that, as in MULTI/EXEC, one failing command does not stop the
others; the first error is reported. Answers ``{0}`` (conflict), ``{1, replies...}`` or
``{2, index, error}``."""

MAX_SCRIPT_ARGS = 7000
"""Lua's ``unpack`` stops near 8000 values, so no command inside the guard script may be longer."""
_SKIPPED_READS = frozenset({"TIME"})
_MAP_READS = frozenset({"HGETALL"})
_UNORDERED_READS = frozenset({"SMEMBERS", "SINTER", "SUNION", "SDIFF", "HKEYS", "HVALS"})
_UNAVAILABLE_REPLIES = ("ERR failed to talk to redis", "LOADING", "MASTERDOWN", "TRYAGAIN")
_AUTH_REPLIES = ("Unauthorized", "WRONGPASS", "NOAUTH", "NOPERM")


def arg_text(value: Any) -> str:
    """One argument as the text Redis stores: the REST API carries JSON, and only text is exact."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise BackendError(
            "upstash cannot send a bool argument; encode it as text first", backend_kind=KIND
        )
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


def expect(value: Any, out: list[str], mode: str = "v") -> None:
    """Append the type-tagged encoding of one reply that ``GUARD_SCRIPT`` compares against."""
    if mode == "m" and isinstance(value, dict):
        value = [part for pair in value.items() for part in pair]
    if mode in ("m", "u") and isinstance(value, list):
        out.extend((mode, str(len(value))))
        for item in value:
            if not isinstance(item, str):
                raise BackendError(f"guard cannot compare a {type(item).__name__} member", backend_kind=KIND)
            out.append(item)
    elif value is None:
        out.append("n")
    elif isinstance(value, str):
        out.extend(("s", value))
    elif isinstance(value, int) and not isinstance(value, bool):
        out.extend(("i", str(value)))
    elif isinstance(value, list):
        out.extend(("a", str(len(value))))
        for item in value:
            expect(item, out)
    else:
        raise BackendError(f"guard cannot compare a {type(value).__name__} reply", backend_kind=KIND)


def _split_reads(reads: Sequence[Command], replies: Sequence[Any]) -> list[tuple[Command, Any]]:
    """Cut an MGET too long for Lua's ``unpack`` into pieces, each with its slice of the reply."""
    pairs: list[tuple[Command, Any]] = []
    for read, reply in zip(reads, replies, strict=True):
        if arg_text(read[0]).upper() == "MGET" and isinstance(reply, list) and len(read) > MAX_SCRIPT_ARGS:
            keys = read[1:]
            for start in range(0, len(keys), MAX_SCRIPT_ARGS - 1):
                stop = start + MAX_SCRIPT_ARGS - 1
                pairs.append((("MGET", *keys[start:stop]), reply[start:stop]))
        else:
            pairs.append((read, reply))
    return pairs


def _command_args(command: Command) -> list[str]:
    args = wire(command)
    if len(args) > MAX_SCRIPT_ARGS:
        raise BackendError(
            f"upstash: a {args[0].upper()} of {len(args)} arguments is too long for the guard "
            f"script (at most {MAX_SCRIPT_ARGS}); write fewer records or fields at once",
            backend_kind=KIND,
        )
    return [str(len(args)), *args]


def guard_args(reads: Sequence[Command], replies: Sequence[Any], writes: Sequence[Command]) -> list[str]:
    """ARGV of ``GUARD_SCRIPT``: the reads with the replies they gave, then the writes."""
    pairs = _split_reads(reads, replies)
    out = [str(len(pairs))]
    for read, reply in pairs:
        name = arg_text(read[0]).upper()
        if name in _SKIPPED_READS:
            out.append("x")
            continue
        mode = "m" if name in _MAP_READS else "u" if name in _UNORDERED_READS else "v"
        out.append(mode)
        out.extend(_command_args(read))
        expect(reply, out, mode)
    out.append(str(len(writes)))
    for write in writes:
        out.extend(_command_args(write))
    return out


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
        self.features = BackendFeatures(kind=KIND, optimistic_guard="lua-compare")

    def __repr__(self) -> str:
        url = str(getattr(self._client, "_url", "?")).split("?", 1)[0]
        return f"<UpstashBackend {_scrub(url, self._secret)} token=***>"

    async def detect(self) -> None:
        """Check the URL and token with a PING; Upstash has no INFO that reports a version."""
        await self.ping()

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
        body = wire(command)
        self.stats.record(1)
        reply = await self._send(lambda: self._client.execute(body))
        return normalize_reply(command, reply)

    async def _batch(self, commands: Sequence[Command], *, atomic: bool) -> list[Any]:
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
        replies = await self.pipeline(reads)
        writes = list(plan(replies))
        if not writes:
            return []
        if not reads:
            return await self.atomic(writes)
        outcome = await self.eval(GUARD_SCRIPT, list(watch), guard_args(reads, replies, writes))
        if not isinstance(outcome, list) or not outcome or outcome[0] not in (0, 1, 2):
            raise BackendError(f"upstash guard script answered {outcome!r}", backend_kind=KIND)
        if outcome[0] == 0:
            return None
        if outcome[0] == 2:
            index, message = outcome[1], _scrub(str(outcome[2]), self._secret)
            raise BackendError(
                f"upstash error in write {index} of {len(writes)}: {message}", backend_kind=KIND
            )
        return list(outcome[1:])

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
        result = await self.execute(("EVAL", script.source, *tail))
        self._loaded.add(script.sha)
        return result

    async def ping(self) -> None:
        await self.execute(("PING",))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._send(self._client.close)
