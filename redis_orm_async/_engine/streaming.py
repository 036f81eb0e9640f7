"""Streaming: walk any result a batch at a time, each batch one page after the last row read."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection

from .._backends.protocol import Backend
from .._errors import NotFoundError
from .._model.schema import ModelMeta
from .._query.match import after_row
from .._query.parse import And, Compare, Query, Row
from .reads import read_rows


async def stream_rows(
    backend: Backend, meta: ModelMeta, query: Query, fields: Collection[str] | None, batch: int
) -> AsyncIterator[list[Row]]:
    """Pages of ``batch`` rows, in the query's order, until the result is exhausted.

    Ordered by id alone, the next page is the where plus ``id > last`` (a window of the id ZSET
    or of an equality ZSET, so the page walks only its own rows). Ordered by a field, it is a
    cursor page after the last row; if that record is gone by then, the page is the where plus
    "after the last row's values" instead, which needs no record. Memory holds one page."""
    page = dataclasses.replace(query, take=batch, skip=0, cursor=None)
    by_id = len(query.order) == 1
    last: Row | None = None
    while True:
        if last is None:
            current = page
        elif by_id:
            bound = Compare("id", "lt" if query.order[0].descending else "gt", last["id"])
            current = dataclasses.replace(page, where=And((query.where, bound)))
        else:
            current = dataclasses.replace(page, cursor=last["id"])
        try:
            rows = await read_rows(backend, meta, current, fields)
        except NotFoundError:
            assert last is not None
            current = dataclasses.replace(page, where=And((query.where, after_row(meta, query.order, last))))
            rows = await read_rows(backend, meta, current, fields)
        if rows:
            yield rows
        if len(rows) < batch:
            return
        last = rows[-1]
