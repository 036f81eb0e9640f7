"""The read engine: run a plan against a backend in a constant number of round trips.

A read is one Lua script that turns the plan's index program into ids (or a count), then one
pipeline that reads the records (``HGETALL``, or ``HMGET`` of only the needed fields). Records
that vanished between the two steps are skipped, and every record is re-checked against the
predicate in Python, so an index entry that went stale in between can never leak a wrong row.
When a page read in Redis loses a row that way, it is read again (a bounded number of times) so
that the page stays full.

Expired records whose index entries still wait for the sweep are left out inside the script by
the same rule the exact ``count`` uses: an id in the expiry ZSET with a score before now.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from typing import Any

from .._backends.protocol import Backend, Command
from .._errors import NotFoundError
from .._model.schema import ModelMeta
from .._query.match import matcher, page, sort_rows
from .._query.parse import TRUE, OrderKey, Query, Row
from .._query.planner import AllIds, Node, Plan, ScoreRange, build_plan, compile_program
from .._scripts import load
from .expiry import clean_ids

FETCH_CHUNK = 10_000
"""Record reads per pipeline: large enough that a page or a relation level is one round trip."""
SCAN_BATCH = 500
"""Ids per batch when no index narrows a query and the id ZSET is walked."""
PAGE_ATTEMPTS = 3
"""Reads of one page when concurrent writers keep removing rows from it."""
PAGE_TEMPS = 5

QUERY_SCRIPT = load("query")
"""One script for every indexed read. The program (postfix, in ARGV) builds the candidate set in
temporary keys. ``page`` mode then walks the ordered ZSET (the id ZSET or the order field's range
ZSET; nulls in their own segment), either intersected with the candidates first or checking each
member against them, whichever the cardinalities say is cheaper; a where that is just a range of
the ordering ZSET walks its rank window with no candidate set at all. It returns the page plus,
where one score may hold several sort values (ints past 2**53, Decimals, several order keys), the
members tied in score with its first and last rows, and ``lead``: how many returned ids precede
the page. Python sorts those rows exactly and slices, so the order is exact in every case."""


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


def _temporary(meta: ModelMeta) -> Any:
    nonce = secrets.token_hex(6)
    return lambda n: meta.keys.temporary(f"q{nonce}:{n}")


async def _run_script(
    backend: Backend,
    meta: ModelMeta,
    plan: Plan,
    mode: str,
    page_args: Sequence[str | int] = (),
    source: Node | None = None,
) -> Any:
    order_key = plan.order_index or meta.keys.ids()
    program = compile_program(meta, plan.source if source is None else source, order_key)
    extra = PAGE_TEMPS if mode == "page" else 0
    keys, tokens = program.finish(_temporary(meta), extra)
    args = [mode, program.temps + extra, len(tokens), *tokens, *page_args]
    return await backend.eval(QUERY_SCRIPT, keys, args)


async def _page_ids(backend: Backend, meta: ModelMeta, plan: Plan) -> tuple[int, list[str]]:
    first = plan.order[0]
    source = plan.source
    bounded = isinstance(source, ScoreRange) and source.key == plan.order_index
    multi = plan.order[1:] != (OrderKey("id", first.descending),)
    page_args: list[str | int] = [
        "id" if first.field == "id" else "field",
        "1" if first.descending else "0",
        "1" if multi else "0",
        plan.skip,
        -1 if plan.take is None else plan.take,
        plan.cursor or "",
        "1" if meta.id_kind == "manual_int" else "0",
        "0" if isinstance(source, AllIds) or bounded else "1",
        *((source.low, source.high) if isinstance(source, ScoreRange) and bounded else ("", "")),
        "never" if multi or meta.id_kind == "manual_int" else _injective(meta, first.field),
    ]
    # a bounded page walks the range itself: the candidate program would be wasted work
    walked = AllIds() if bounded else None
    lead, ids = await _run_script(backend, meta, plan, "page", page_args, walked)
    return int(lead), list(ids)


def _injective(meta: ModelMeta, name: str) -> str:
    """Where one score means one sort value, a range ZSET's member order within a score (the id,
    for string ids) is already the exact order, and the page needs no tie completion."""
    if name == "id":
        return "never"
    kind = meta.fields[name].codec.kind
    if kind in ("float", "date"):
        return "always"
    return "below53" if kind in ("int", "datetime") else "never"


def _missing_cursor(meta: ModelMeta, cursor: str) -> NotFoundError:
    return NotFoundError(
        f"{meta.name}: the cursor record {cursor!r} does not exist",
        meta={"model": meta.name, "cursor": cursor},
    )


async def _paged(
    backend: Backend, meta: ModelMeta, plan: Plan, query: Query, fields: Collection[str] | None
) -> list[Row]:
    test = matcher(meta, query.where)
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        lead, ids = await _page_ids(backend, meta, plan)
        if lead < 0:
            raise _missing_cursor(meta, query.cursor or "")
        wanted = [*ids, query.cursor] if query.cursor is not None else ids
        rows = await fetch_rows(backend, meta, wanted, fields)
        if query.where == TRUE:
            good = [row for i in ids if (row := rows.get(i)) is not None]
        else:
            good = [row for i in ids if (row := rows.get(i)) is not None and test(row)]
        cursor_row = None if query.cursor is None else rows.get(query.cursor)
        lost = len(good) < len(ids) or (query.cursor is not None and cursor_row is None)
        if lost and attempt < PAGE_ATTEMPTS:
            continue
        if query.cursor is not None:
            if cursor_row is None:
                raise _missing_cursor(meta, query.cursor)
            return page(meta, good, Query(TRUE, query.order, query.take, query.skip), cursor_row)
        ordered = sort_rows(meta, good, query.order)
        return ordered[lead : None if query.take is None else lead + query.take]
    raise AssertionError("unreachable")


async def _candidate_ids(backend: Backend, meta: ModelMeta, plan: Plan) -> list[str]:
    return list(await _run_script(backend, meta, plan, "ids"))


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


async def forget(backend: Backend, meta: ModelMeta, vanished: Sequence[str]) -> None:
    """Lazy cleanup: ids an index still held but whose records expired lose their entries now."""
    if vanished:
        await clean_ids(backend, meta, vanished)


async def read_rows(
    backend: Backend, meta: ModelMeta, query: Query, fields: Collection[str] | None = None
) -> list[Row]:
    """The rows ``find_many`` returns, in order; ``fields`` None reads whole records."""
    plan = build_plan(meta, query)
    if fields is not None:
        fields = set(fields) | query.fields
    if plan.strategy == "empty":
        return []
    if plan.strategy == "page":
        return await _paged(backend, meta, plan, query, fields)
    cursor_row: Row | None = None
    rows: list[Row]
    if plan.strategy == "candidates":
        ids = await _candidate_ids(backend, meta, plan)
        if query.cursor is not None:
            ids.append(query.cursor)
        fetched = await fetch_rows(backend, meta, ids, fields)
        if query.cursor is not None:
            cursor_row = fetched.pop(query.cursor, None)
        rows = list(fetched.values())
    else:
        only_id = len(query.order) == 1 and query.cursor is None and query.take is not None
        stop = query.skip + query.take if only_id and query.take is not None else None
        rows = list(await _scan(backend, meta, query, fields, stop, query.order[0].descending))
        if query.cursor is not None:
            cursor_row = next((row for row in rows if row["id"] == query.cursor), None)
            if cursor_row is None:
                found = await fetch_rows(backend, meta, [query.cursor], fields)
                cursor_row = found.get(query.cursor)
    if query.cursor is not None and cursor_row is None:
        raise _missing_cursor(meta, query.cursor)
    return page(meta, rows, query, cursor_row)


async def count_rows(backend: Backend, meta: ModelMeta, query: Query) -> int:
    """Exact count of matching live records; indexes count alone when they answer exactly."""
    plan = build_plan(meta, query, "count")
    if plan.strategy == "empty":
        return 0
    if plan.strategy == "count":
        return int(await _run_script(backend, meta, plan, "count"))
    return len(await _matching(backend, meta, plan, query))


async def select_ids(backend: Backend, meta: ModelMeta, query: Query) -> list[str]:
    """Ids of every matching live record, for bulk writes."""
    plan = build_plan(meta, query, "ids")
    if plan.strategy == "empty":
        return []
    if plan.strategy == "ids":
        return [str(i) for i in await _run_script(backend, meta, plan, "ids")]
    return [row["id"] for row in await _matching(backend, meta, plan, query)]


async def _matching(backend: Backend, meta: ModelMeta, plan: Plan, query: Query) -> list[Row]:
    fields = query.fields
    if plan.strategy == "candidates":
        test = matcher(meta, query.where)
        rows = await fetch_rows(backend, meta, await _candidate_ids(backend, meta, plan), fields)
        return [row for row in rows.values() if test(row)]
    return list(await _scan(backend, meta, query, fields))
