"""The read engine: run a plan against a backend in a constant number of round trips, writing nothing.

A read is one read-only Lua script (``query.lua``) that tests ids with index lookups while it
walks one ordered ZSET or lists the cheapest candidates, then one pipeline that reads the records
(``HGETALL``, or ``HMGET`` of only the needed fields). Records that vanished between the two
steps are skipped, and every record is re-checked against the predicate in Python
(``_query.match``), so an index entry that went stale in between can never leak a wrong row.
When a page loses a row that way, it is read again (a bounded number of times) so that it stays
full. No read creates a key, so every read works on a read-only replica and at ``maxmemory``.

Expired records whose index entries still wait for the sweep are skipped inside the script by
their own score in the expiry ZSET, so a read never loads the expired backlog; the script returns
some of the ids it skipped, and they are handed to the lazy cleanup (``clean_ids``).

A server that refuses scripts (``features.scripting`` False) gets the same answers from plain
commands: candidates listed with ``ZRANGE``-family commands in pipelines, then read, filtered,
sorted and paged in Python. ``_read`` is the one place that chooses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .._backends.protocol import Backend, Command, ScriptsRefused, pairs_to_dict
from .._errors import BackendError, NotFoundError
from .._model.schema import ModelMeta
from .._query.locate import Locator, equalities
from .._query.match import matcher, page, sort_rows
from .._query.parse import TRUE, Query, Row, parse_where
from .._query.planner import (
    TRUE_TEST,
    Combined,
    Everything,
    Leaf,
    Plan,
    Smallest,
    Source,
    build_plan,
)
from .._scripts import load
from .expiry import clean_ids

FETCH_CHUNK = 10_000
"""Record reads per pipeline: large enough that a page or a relation level is one round trip."""
SCAN_BATCH = 500
"""Ids per batch when no index narrows a query and the id ZSET is walked."""
PAGE_ATTEMPTS = 3
"""Reads of one page when concurrent writers keep removing rows from it."""

QUERY_SCRIPT = load("query")
"""Every indexed read (``page``, ``count``, ``ids``, ``candidates``); read-only. A page walks one
ordered ZSET (the id ZSET or the smallest equality ZSET of the where, in id order; or the order
field's range ZSET, windowed by the where's range of it, then the records without a value),
tests each member, or sorts the candidates when they are far fewer than the walk would visit. It
returns the page plus, where one score may hold several sort values (ints past 2**53, Decimals,
several order keys), the members tied in score with its first and last rows, and ``lead``: how
many returned ids precede the page. Python sorts those rows exactly and slices."""
UNIQUE_SCRIPT = load("unique")
"""A record by a unique value (claim, then record) in one round trip; read-only."""
COUNT_SCRIPT = load("count")
"""Exact count: ids minus ids whose record has expired but whose entries await the sweep."""


def _record_command(meta: ModelMeta, id_text: str, fields: Collection[str] | None) -> Command:
    key = meta.keys.record(id_text)
    if fields is None:
        return ("HGETALL", key)
    return ("HMGET", key, "id", *fields)


def _row(id_text: str, reply: Any, fields: Collection[str] | None) -> dict[str, str] | None:
    if fields is None:
        return reply or None
    if not reply or reply[0] is None:
        return None
    row = {"id": id_text}
    for name, text in zip(fields, reply[1:], strict=True):
        if text is not None:
            row[name] = text
    return row


def read_fields(fields: Collection[str] | None) -> tuple[str, ...] | None:
    """Field names for ``HMGET`` (sorted, without the id), or None for ``HGETALL``."""
    return None if fields is None else tuple(sorted(set(fields) - {"id"}))


async def fetch_rows(
    backend: Backend, meta: ModelMeta, ids: Sequence[str], fields: Collection[str] | None
) -> dict[str, dict[str, str]]:
    """The stored rows of these ids that still exist, one pipeline per 10,000 ids."""
    wanted = read_fields(fields)
    unique = list(dict.fromkeys(ids))
    rows: dict[str, dict[str, str]] = {}
    record = meta.keys.record
    for start in range(0, len(unique), FETCH_CHUNK):
        chunk = unique[start : start + FETCH_CHUNK]
        if wanted is None:  # whole records, the common case: each reply is the row (or empty)
            replies = await backend.pipeline([("HGETALL", record(i)) for i in chunk])
            rows.update({i: reply for i, reply in zip(chunk, replies, strict=True) if reply})
            continue
        replies = await backend.pipeline([_record_command(meta, i, wanted) for i in chunk])
        for id_text, reply in zip(chunk, replies, strict=True):
            row = _row(id_text, reply, wanted)
            if row is not None:
                rows[id_text] = row
    return rows


async def forget(backend: Backend, meta: ModelMeta, vanished: Sequence[str]) -> None:
    """Lazy cleanup: ids a read met whose records expired lose their index entries now.

    Best effort: a replica or a full server refuses the write, and the read that found them has
    already succeeded; the sweep removes them later."""
    if vanished:
        with contextlib.suppress(BackendError):
            await clean_ids(backend, meta, list(dict.fromkeys(vanished)))


def _missing_cursor(meta: ModelMeta, cursor: str) -> NotFoundError:
    return NotFoundError(
        f"{meta.name}: the record the cursor names does not exist (any more)",
        meta={"model": meta.name, "cursor": cursor},
    )


def _with_cursor(ids: list[str], query: Query) -> list[str]:
    return [*ids, query.cursor] if query.cursor is not None else ids


def _finish(meta: ModelMeta, query: Query, rows: dict[str, dict[str, str]]) -> list[Row]:
    """Filter, sort and page rows in Python, after the cursor row if there is one."""
    cursor_row: Row | None = None
    if query.cursor is not None:
        cursor_row = rows.pop(query.cursor, None)
        if cursor_row is None:
            raise _missing_cursor(meta, query.cursor)
    return page(meta, list(rows.values()), query, cursor_row)


async def _scan(
    backend: Backend,
    meta: ModelMeta,
    query: Query,
    fields: Collection[str] | None,
    stop_after: int | None = None,
    descending: bool = False,
) -> list[dict[str, str]]:
    """Walk the id ZSET in batches; each batch's reads carry the next batch's id lookup."""
    test = matcher(meta, query.where)
    wanted = read_fields(fields)
    ids_key = meta.keys.ids()
    int_ids = meta.id_kind == "manual_int"

    def next_batch(after: str | None) -> Command:
        if int_ids:
            bound = "(" + after if after is not None else ("+inf" if descending else "-inf")
            if descending:
                return ("ZREVRANGEBYSCORE", ids_key, bound, "-inf", "LIMIT", 0, SCAN_BATCH)
            return ("ZRANGEBYSCORE", ids_key, bound, "+inf", "LIMIT", 0, SCAN_BATCH)
        lex = "(" + after if after is not None else ("+" if descending else "-")
        if descending:
            return ("ZREVRANGEBYLEX", ids_key, lex, "-", "LIMIT", 0, SCAN_BATCH)
        return ("ZRANGEBYLEX", ids_key, lex, "+", "LIMIT", 0, SCAN_BATCH)

    matched: list[dict[str, str]] = []
    vanished: list[str] = []
    batch: list[str] = list(await backend.execute(next_batch(None)))
    while batch:
        commands = [_record_command(meta, i, wanted) for i in batch]
        full = len(batch) == SCAN_BATCH
        if full:
            commands.append(next_batch(batch[-1]))
        replies = await backend.pipeline(commands)
        for id_text, reply in zip(batch, replies, strict=False):
            row = _row(id_text, reply, wanted)
            if row is None:
                vanished.append(id_text)
            elif test(row):
                matched.append(row)
        if stop_after is not None and len(matched) >= stop_after:
            break
        batch = list(replies[-1]) if full else []
    await forget(backend, meta, vanished)
    return matched


async def _scanned_rows(
    backend: Backend, meta: ModelMeta, query: Query, fields: Collection[str] | None
) -> list[Row]:
    """``find_many`` when no index narrows: the id ZSET walked, stopping early in id order."""
    only_id = len(query.order) == 1 and query.cursor is None and query.take is not None
    stop = query.skip + query.take if only_id and query.take is not None else None
    rows = await _scan(backend, meta, query, fields, stop, query.order[0].descending)
    cursor_row: Row | None = None
    if query.cursor is not None:
        cursor_row = next((row for row in rows if row["id"] == query.cursor), None)
        if cursor_row is None:
            found = await fetch_rows(backend, meta, [query.cursor], fields)
            cursor_row = found.get(query.cursor)
        if cursor_row is None:
            raise _missing_cursor(meta, query.cursor)
    return page(meta, rows, query, cursor_row)


class _Reader(Protocol):
    async def rows(
        self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query, fields: Collection[str] | None
    ) -> list[Row]: ...

    async def count(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> int: ...

    async def ids(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> list[str]: ...

    async def claimed(
        self, backend: Backend, meta: ModelMeta, claim: str, fields: tuple[str, ...] | None, ttl: bool
    ) -> tuple[str, Any, int | None] | None: ...


class _Scripted:
    """Reads as one read-only script each (plus the record reads)."""

    async def _run(self, backend: Backend, plan: Plan) -> list[Any]:
        reply: list[Any] = await backend.eval(QUERY_SCRIPT, plan.keys, plan.args)
        return reply

    async def rows(
        self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query, fields: Collection[str] | None
    ) -> list[Row]:
        if plan.strategy == "page":
            return await self._paged(backend, meta, plan, query, fields)
        if plan.strategy == "scan":
            return await _scanned_rows(backend, meta, query, fields)
        ids, expired = await self._run(backend, plan)
        rows = await fetch_rows(backend, meta, _with_cursor(list(ids), query), fields)
        await forget(backend, meta, expired)
        return _finish(meta, query, rows)

    async def _paged(
        self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query, fields: Collection[str] | None
    ) -> list[Row]:
        test = matcher(meta, query.where)
        skipped: list[str] = []
        for attempt in range(1, PAGE_ATTEMPTS + 1):
            lead, ids, expired = await self._run(backend, plan)
            skipped.extend(expired)
            if lead < 0:
                raise _missing_cursor(meta, query.cursor or "")
            rows = await fetch_rows(backend, meta, _with_cursor(ids, query), fields)
            if query.where == TRUE:
                good = [row for i in ids if (row := rows.get(i)) is not None]
            else:
                good = [row for i in ids if (row := rows.get(i)) is not None and test(row)]
            cursor_row = None if query.cursor is None else rows.get(query.cursor)
            lost = len(good) < len(ids) or (query.cursor is not None and cursor_row is None)
            if lost and attempt < PAGE_ATTEMPTS:
                continue
            await forget(backend, meta, skipped)
            if query.cursor is not None:
                if cursor_row is None:
                    raise _missing_cursor(meta, query.cursor)
                return page(meta, good, Query(TRUE, query.order, query.take, query.skip), cursor_row)
            ordered = sort_rows(meta, good, query.order)
            return ordered[lead : None if query.take is None else lead + query.take]
        raise AssertionError("unreachable")

    async def count(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> int:
        if plan.strategy == "count" and plan.test == TRUE_TEST:
            keys = meta.keys
            return int(await backend.eval(COUNT_SCRIPT, [keys.ids(), keys.expiry()], []))
        if plan.strategy == "count":
            n, expired = await self._run(backend, plan)
            await forget(backend, meta, expired)
            return int(n)
        return len(await self._matching(backend, meta, plan, query))

    async def ids(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> list[str]:
        if plan.strategy == "ids":
            ids, expired = await self._run(backend, plan)
            await forget(backend, meta, expired)
            return [str(i) for i in ids]
        return [row["id"] for row in await self._matching(backend, meta, plan, query)]

    async def _matching(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> list[Row]:
        if plan.strategy == "candidates":
            ids, expired = await self._run(backend, plan)
            rows = await fetch_rows(backend, meta, ids, query.fields)
            await forget(backend, meta, expired)
            test = matcher(meta, query.where)
            return [row for row in rows.values() if test(row)]
        return list(await _scan(backend, meta, query, query.fields))

    async def claimed(
        self, backend: Backend, meta: ModelMeta, claim: str, fields: tuple[str, ...] | None, ttl: bool
    ) -> tuple[str, Any, int | None] | None:
        mode = "all" if fields is None else ("ttl" if ttl else "some")
        args = [meta.keys.record(""), mode, *(() if fields is None else ("id", *fields))]
        reply = await backend.eval(UNIQUE_SCRIPT, [claim], args)
        if not reply:
            return None
        record = pairs_to_dict(reply[1]) if fields is None else reply[1]
        return str(reply[0]), record, int(reply[2]) if ttl else None


class _Plain:
    """Reads with plain commands only, for servers that refuse scripts: candidates listed in
    pipelines, then read, filtered, sorted and paged in Python. Correct, and slower."""

    async def rows(
        self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query, fields: Collection[str] | None
    ) -> list[Row]:
        ids = await _plain_candidates(backend, plan.source)
        if ids is None:
            return await _scanned_rows(backend, meta, query, fields)
        rows = await fetch_rows(backend, meta, _with_cursor(ids, query), fields)
        return _finish(meta, query, rows)

    async def _matching(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> list[Row]:
        ids = await _plain_candidates(backend, plan.source)
        if ids is None:
            return list(await _scan(backend, meta, query, query.fields))
        rows = await fetch_rows(backend, meta, ids, query.fields)
        test = matcher(meta, query.where)
        return [row for row in rows.values() if test(row)]

    async def count(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> int:
        if plan.strategy == "count" and plan.test == TRUE_TEST:
            seconds, micros = await backend.execute(("TIME",))
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            keys = meta.keys
            total, expired = await backend.pipeline(
                [("ZCARD", keys.ids()), ("ZCOUNT", keys.expiry(), "-inf", f"({now_ms}")]
            )
            return int(total) - int(expired)
        return len(await self._matching(backend, meta, plan, query))

    async def ids(self, backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> list[str]:
        return [row["id"] for row in await self._matching(backend, meta, plan, query)]

    async def claimed(
        self, backend: Backend, meta: ModelMeta, claim: str, fields: tuple[str, ...] | None, ttl: bool
    ) -> tuple[str, Any, int | None] | None:
        id_text = await backend.execute(("GET", claim))
        if id_text is None:
            return None
        key = meta.keys.record(id_text)
        commands: list[Command] = [("HGETALL", key) if fields is None else ("HMGET", key, "id", *fields)]
        if ttl:
            commands.append(("PTTL", key))
        replies = await backend.pipeline(commands)
        return str(id_text), replies[0], int(replies[1]) if ttl else None


def _card_command(leaf: Leaf) -> Command:
    if leaf.kind == "M":
        return ("ZCARD", leaf.key)
    if leaf.kind == "S":
        return ("ZCOUNT", leaf.key, leaf.low, leaf.high)
    if leaf.kind == "C":
        return ("EXISTS", leaf.key)
    return ("ZLEXCOUNT", leaf.key, leaf.low, leaf.high)


def _list_command(leaf: Leaf) -> Command:
    if leaf.kind == "M":
        return ("ZRANGE", leaf.key, 0, -1)
    if leaf.kind == "S":
        return ("ZRANGEBYSCORE", leaf.key, leaf.low, leaf.high)
    if leaf.kind == "C":
        return ("GET", leaf.key)
    return ("ZRANGEBYLEX", leaf.key, leaf.low, leaf.high)


def _listed(leaf: Leaf, reply: Any) -> list[str]:
    if leaf.kind == "C":
        return [] if reply is None else [str(reply)]
    if leaf.kind in ("Q", "W"):
        return [member.split("\0", 1)[1] for member in reply]
    return list(reply)


def _sized(source: Source, out: list[Leaf]) -> None:
    """The leaves whose cardinality decides which part of an AND is listed."""
    if isinstance(source, Smallest):
        for item in source.items:
            _leaves(item, out)
    elif isinstance(source, Combined):
        for item in source.items:
            _sized(item, out)


def _leaves(source: Source, out: list[Leaf]) -> None:
    if isinstance(source, Leaf):
        out.append(source)
    elif isinstance(source, Smallest | Combined):
        for item in source.items:
            _leaves(item, out)


def _size(source: Source, cards: Mapping[Leaf, int]) -> int:
    if isinstance(source, Leaf):
        return cards[source]
    assert isinstance(source, Smallest | Combined)
    sizes = [_size(item, cards) for item in source.items]
    return min(sizes) if isinstance(source, Smallest) else sum(sizes)


def _chosen(source: Source, cards: Mapping[Leaf, int]) -> list[Leaf]:
    if isinstance(source, Leaf):
        return [source]
    if isinstance(source, Smallest):
        return _chosen(min(source.items, key=lambda item: _size(item, cards)), cards)
    assert isinstance(source, Combined)
    return [leaf for item in source.items for leaf in _chosen(item, cards)]


async def _plain_candidates(backend: Backend, source: Source) -> list[str] | None:
    """The candidate ids a source lists, with plain commands; None when it lists every id."""
    if source is None:
        return []
    if isinstance(source, Everything):
        return None
    sized: list[Leaf] = []
    _sized(source, sized)
    sized = list(dict.fromkeys(sized))
    replies = await backend.pipeline([_card_command(leaf) for leaf in sized]) if sized else []
    cards = {leaf: int(reply) for leaf, reply in zip(sized, replies, strict=True)}
    chosen = list(dict.fromkeys(_chosen(source, cards)))
    replies = await backend.pipeline([_list_command(leaf) for leaf in chosen])
    ids = (i for leaf, reply in zip(chosen, replies, strict=True) for i in _listed(leaf, reply))
    return list(dict.fromkeys(ids))


SCRIPTED: _Reader = _Scripted()
PLAIN: _Reader = _Plain()
T = TypeVar("T")


async def _read(backend: Backend, run: Callable[[_Reader], Awaitable[T]]) -> T:
    """The one place that chooses how reads run: one read-only script each, or plain commands
    only on a server that refuses scripts (the adapter turns ``scripting`` off at the first
    refusal; a read has written nothing, so it simply runs again the plain way)."""
    if backend.features.scripting:
        try:
            return await run(SCRIPTED)
        except ScriptsRefused:
            pass
    return await run(PLAIN)


async def _eval_pages(backend: Backend, plans: Sequence[Plan]) -> list[Any]:
    """One pipeline of read scripts, one per plan; a server that lost the script (a restart, a
    SCRIPT FLUSH) gets it loaded by one plain call, then the pipeline again."""
    commands: list[Command] = [
        ("EVALSHA", QUERY_SCRIPT.sha, len(plan.keys), *plan.keys, *plan.args) for plan in plans
    ]
    try:
        return await backend.pipeline(commands)
    except ScriptsRefused:
        raise
    except BackendError:
        await backend.eval(QUERY_SCRIPT, plans[0].keys, plans[0].args)
        return await backend.pipeline(commands)


async def read_pages(
    backend: Backend, meta: ModelMeta, queries: Sequence[Query], fields: Collection[str] | None
) -> list[list[Row]] | None:
    """Many pages of one model at once (a window of children per parent): one pipeline of read
    scripts, then one pipeline of the records they chose, whatever the number of pages; each page
    is exact as ``read_rows`` makes it (expired records skipped, rows re-checked, a page that lost
    rows to a concurrent writer read again). None when some page is not an indexed ``page`` plan
    or the server refuses scripts: the caller reads the plain way."""
    if not queries or not backend.features.scripting:
        return None
    plans = [build_plan(meta, query, cached=False) for query in queries]
    if any(plan.strategy not in ("page", "empty") or query.cursor is not None
           for plan, query in zip(plans, queries, strict=True)):  # fmt: skip
        return None
    wanted = None if fields is None else set(fields).union(*(query.fields for query in queries))
    results: list[list[Row] | None] = [[] if plan.strategy == "empty" else None for plan in plans]
    skipped: list[str] = []
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        todo = [number for number, result in enumerate(results) if result is None]
        if not todo:
            break
        try:
            replies = await _eval_pages(backend, [plans[number] for number in todo])
        except ScriptsRefused:
            return None
        rows = await fetch_rows(backend, meta, [i for reply in replies for i in reply[1]], wanted)
        for number, (lead, ids, expired) in zip(todo, replies, strict=True):
            skipped.extend(expired)
            query = queries[number]
            test = matcher(meta, query.where)
            good = [row for i in ids if (row := rows.get(i)) is not None and test(row)]
            if len(good) < len(ids) and attempt < PAGE_ATTEMPTS:
                continue
            ordered = sort_rows(meta, good, query.order)
            results[number] = ordered[lead : None if query.take is None else lead + query.take]
    await forget(backend, meta, skipped)
    return [result or [] for result in results]


async def _looked_up(
    backend: Backend, meta: ModelMeta, plan: Plan, query: Query, fields: Collection[str] | None
) -> list[Row]:
    """``lookup``: the named ids' records read in one pipeline, then filtered in Python (a gone
    or expired record reads as empty and is left out)."""
    rows = await fetch_rows(backend, meta, plan.ids, fields)
    test = matcher(meta, query.where)
    return [row for row in rows.values() if test(row)]


async def read_rows(
    backend: Backend, meta: ModelMeta, query: Query, fields: Collection[str] | None = None
) -> list[Row]:
    """The rows ``find_many`` returns, in order; ``fields`` None reads whole records."""
    plan = build_plan(meta, query)
    wanted = None if fields is None else set(fields) | query.fields
    if plan.strategy == "empty":
        return []
    if plan.strategy == "lookup":
        rows = await fetch_rows(backend, meta, _with_cursor(list(plan.ids), query), wanted)
        return _finish(meta, query, rows)
    return await _read(backend, lambda reader: reader.rows(backend, meta, plan, query, wanted))


async def count_rows(backend: Backend, meta: ModelMeta, query: Query) -> int:
    """Exact count of matching live records; indexes count alone when they answer exactly."""
    plan = build_plan(meta, query, "count")
    if plan.strategy == "empty":
        return 0
    if plan.strategy == "lookup":
        return len(await _looked_up(backend, meta, plan, query, query.fields))
    return await _read(backend, lambda reader: reader.count(backend, meta, plan, query))


async def select_ids(backend: Backend, meta: ModelMeta, query: Query) -> list[str]:
    """Ids of every matching live record, for bulk writes."""
    plan = build_plan(meta, query, "ids")
    if plan.strategy == "empty":
        return []
    if plan.strategy == "lookup":
        return [row["id"] for row in await _looked_up(backend, meta, plan, query, query.fields)]
    return await _read(backend, lambda reader: reader.ids(backend, meta, plan, query))


async def _by_claim(
    backend: Backend,
    meta: ModelMeta,
    locator: Locator,
    where: Mapping[str, Any],
    fields: tuple[str, ...] | None,
    ttl: bool = False,
) -> tuple[dict[str, str], int | None] | None:
    """The record a unique claim points to, in one round trip, only if it still holds the value:
    a claim that went stale must not answer with another record."""
    assert locator.claim is not None
    checked = {name for name in where if name != "id"}
    wanted = None if fields is None else tuple(sorted(set(fields) | checked))
    claim = locator.claim
    found = await _read(backend, lambda reader: reader.claimed(backend, meta, claim, wanted, ttl))
    if found is None:
        return None
    id_text, reply, left = found
    row = (reply or None) if wanted is None else _row(id_text, reply, wanted)
    if row is None or not matcher(meta, parse_where(meta, where))({**row, "id": id_text}):
        return None
    return row, left


async def find_record(
    backend: Backend,
    meta: ModelMeta,
    locator: Locator,
    where: Mapping[str, Any],
    fields: Collection[str] | None = None,
) -> dict[str, str] | None:
    """``find_unique``: one record by its id or a unique value (one round trip either way);
    ``where`` as the caller wrote it (``{"eq": v}`` values included)."""
    if locator.id_text is not None:
        if fields is None:  # the most common read of all: one HGETALL, nothing around it
            stored: dict[str, str] = await backend.execute(("HGETALL", meta.keys.record(locator.id_text)))
            return stored or None
        return (await fetch_rows(backend, meta, [locator.id_text], fields)).get(locator.id_text)
    found = await _by_claim(backend, meta, locator, equalities(where), read_fields(fields))
    return None if found is None else found[0]


async def record_exists(
    backend: Backend, meta: ModelMeta, locator: Locator, where: Mapping[str, Any]
) -> bool:
    if locator.id_text is not None:
        return bool(await backend.execute(("EXISTS", meta.keys.record(locator.id_text))))
    return await _by_claim(backend, meta, locator, where, ()) is not None


async def record_ttl(
    backend: Backend, meta: ModelMeta, locator: Locator, where: Mapping[str, Any]
) -> int | None:
    """Milliseconds the record has left (-1: it never expires), or None if there is none."""
    if locator.id_text is not None:
        left = int(await backend.execute(("PTTL", meta.keys.record(locator.id_text))))
        return None if left == -2 else left
    found = await _by_claim(backend, meta, locator, where, (), ttl=True)
    if found is None or found[1] is None or found[1] == -2:
        return None
    return found[1]
