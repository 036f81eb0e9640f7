"""A record's lifecycle as the API offers it: create, update, upsert, touch, delete, one or many.

Each call becomes write operations for ``WriteEngine``. The common case needs no read: a create, a
delete, a touch, and an update whose values are validated field by field or whose counters are
plain integers, each one script call. The rest (a model that validates fields together, a float or
Decimal counter, a bulk write that must re-test its where on each record) reads the record first
and sends the change with the record it read as ``expect``, reading again if it changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic

from .._backends.protocol import Backend, ScriptsRefused
from .._errors import UniqueConstraintError, ValidationError
from .._model.model import Model
from .._model.schema import ModelMeta, invalid
from .._model.state import claim_keys, record_facts
from .._query.changes import FieldChange
from .._query.locate import Locator
from .._query.match import Matcher
from .._query.parse import Compare, Query
from .._query.ttl import Expiry
from .bulk import bulk_chunks, shared_value
from .ops import (
    CreateOp,
    DeleteIndexedOp,
    DeleteOp,
    UpdateOp,
    WriteOp,
    check_supplied_id,
    diff_changes,
    plain_changes,
)
from .overlay import write_conflict
from .reads import fetch_rows, select_ids
from .writes import WriteEngine

BULK_CHUNK = 500
"""Records per script call in ``create_many``, ``update_many`` and ``delete_many``: big enough to
amortize a round trip, small enough to keep the server's other clients waiting only briefly."""


def validated(meta: ModelMeta, data: Mapping[str, Any] | Model) -> Model:
    """A caller's record data as a model instance, checked before any I/O."""
    if type(data) is dict:  # the usual data, checked first: create_many asks this of each record
        check_supplied_id(meta, data)
        return model_of(meta, data)
    if isinstance(data, meta.model):
        check_supplied_id(meta, data)
        return data
    if isinstance(data, Model):
        raise ValidationError(f"expected {meta.name} data, got a {type(data).__name__}")
    if not isinstance(data, Mapping):
        raise ValidationError(f"{meta.name} data must be a mapping or a {meta.name}")
    check_supplied_id(meta, data)
    return model_of(meta, data)


def model_of(meta: ModelMeta, values: Mapping[str, Any]) -> Model:
    """Validate record values into the model (no check of who chose the id)."""
    try:
        return meta.model.model_validate(values if type(values) is dict else dict(values))
    except pydantic.ValidationError as exc:
        raise invalid(meta.name, exc) from exc


def check_distinct(ops: Sequence[CreateOp]) -> None:
    """Two records of one ``create_many`` may not share an id or a unique value."""
    seen: dict[str, int] = {}
    for position, op in enumerate(ops):
        for key in [op.id_text, *op.claims]:
            if key in seen:
                raise shared_value(op.meta, seen[key], position)
            seen[key] = position


async def create_records(
    engine: WriteEngine, meta: ModelMeta, records: Sequence[Model], ttl_ms: int | None
) -> None:
    """Store validated records, each chunk of ``BULK_CHUNK`` all or nothing; nothing is sent
    until every record is encoded and found distinct from the others."""
    # ``validated`` refused a supplied id unless the model takes them (``check_supplied_id``)
    if meta.id_kind != "generated" or (meta.supplied_ids and any(map(meta.id_supplied, records))):
        ops = [CreateOp(meta, record, ttl_ms) for record in records]
        check_distinct(ops)
        for start in range(0, len(ops), BULK_CHUNK):
            await engine.run(ops[start : start + BULK_CHUNK])
        return
    # fresh ids: the words go straight from the records, with no op kept per record
    for number, words in enumerate(bulk_chunks(meta, records, ttl_ms, BULK_CHUNK)):
        chunk = records[number * BULK_CHUNK : (number + 1) * BULK_CHUNK]
        await engine.run_bulk(meta, words, chunk, ttl_ms)


async def read_located(
    backend: Backend, meta: ModelMeta, locator: Locator
) -> tuple[str, dict[str, str]] | None:
    """The id and stored hash of the record a locator finds, or None; a claim must point at a
    record that still holds its value."""
    id_text = locator.id_text
    if id_text is None:
        assert locator.claim is not None
        id_text = await backend.execute(("GET", locator.claim))
        if id_text is None:
            return None
    stored = await backend.execute(("HGETALL", meta.keys.record(id_text)))
    if not stored:
        return None
    claims = claim_keys(meta, id_text, record_facts(meta, stored))
    if locator.claim is not None and locator.claim not in claims:
        return None
    return id_text, stored


def changed_record(
    meta: ModelMeta, id_text: str, stored: Mapping[str, str], changes: Mapping[str, FieldChange]
) -> Model:
    """The record with ``changes`` applied, validated as a whole."""
    current = meta.decode(id_text, stored)
    values = {name: getattr(current, name) for name in meta.model.model_fields if name in current.__dict__}
    for name, change in changes.items():
        attribute = meta.fields[name].attr
        try:
            values[attribute] = change.apply(values.get(attribute))
        except ValidationError as exc:
            raise ValidationError(
                f"{meta.name}.{name}: {exc.message}", meta={"model": meta.name, "field": name}
            ) from exc
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ValidationError(
                f"{meta.name}.{name}: cannot {change.op} the stored value: {type(exc).__name__}",
                meta={"model": meta.name, "field": name},
            ) from exc
    return meta.validate_names(values)


def plain_update_op(
    meta: ModelMeta,
    locator: Locator,
    changes: Mapping[str, FieldChange],
    expiry: Expiry,
    create: CreateOp | None = None,
) -> UpdateOp | None:
    """The update as one op the server applies without the caller reading the record first, or
    None when the changes need the record (see ``plain_changes``)."""
    plain = plain_changes(meta, changes)
    return None if plain is None else UpdateOp(meta, locator, plain, expiry, create=create)


async def update_one(
    engine: WriteEngine,
    meta: ModelMeta,
    locator: Locator,
    changes: Mapping[str, FieldChange],
    expiry: Expiry,
    *,
    create: CreateOp | None = None,
) -> Model | None:
    """Update the record a locator finds (or create ``create`` when there is none)."""
    op = plain_update_op(meta, locator, changes, expiry, create)
    if op is not None:
        await engine.run([op])
        result: Model | None = op.result
        return result

    async def attempt() -> Model | None:
        found = await read_located(engine.backend, meta, locator)
        if found is None:
            if create is None:
                return None
            try:
                await engine.run([create])
            except UniqueConstraintError:
                if await read_located(engine.backend, meta, locator) is None:
                    raise
                raise write_conflict(meta) from None  # a racing create won: update it instead
            created: Model = create.result
            return created
        id_text, stored = found
        updated = changed_record(meta, id_text, stored, changes)
        op = UpdateOp(
            meta, Locator(meta, id_text=id_text), diff_changes(meta, stored, updated), expiry, expect=stored
        )
        await engine.run([op])
        result: Model | None = op.result
        return result

    return await engine.retrying(attempt)


async def write_matching(
    engine: WriteEngine,
    meta: ModelMeta,
    query: Query,
    test: Matcher,
    make_op: Callable[[str, dict[str, str]], WriteOp],
) -> int:
    """Write every record ``query`` selects, in chunks; each op carries the record it was tested
    on, so a record changed since is read and tested again, never clobbered."""
    backend = engine.backend
    ids = await select_ids(backend, meta, query)
    written = 0
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]

        async def attempt(chunk: list[str] = chunk) -> int:
            rows = await fetch_rows(backend, meta, chunk, None)
            ops = [
                make_op(id_text, dict(row))
                for id_text in chunk
                if (row := rows.get(id_text)) is not None and test(row)
            ]
            await engine.run(ops)
            return sum(op.result is not None for op in ops)

        written += await engine.retrying(attempt)
    return written


def update_op_for(
    meta: ModelMeta, changes: Mapping[str, FieldChange], expiry: Expiry
) -> Callable[[str, dict[str, str]], WriteOp]:
    """How ``update_many`` changes one record it has read and tested."""
    plain = plain_changes(meta, changes)

    def make(id_text: str, stored: dict[str, str]) -> WriteOp:
        locator = Locator(meta, id_text=id_text)
        if plain is not None:
            return UpdateOp(meta, locator, plain, expiry, expect=stored)
        updated = changed_record(meta, id_text, stored, changes)
        return UpdateOp(meta, locator, diff_changes(meta, stored, updated), expiry, expect=stored)

    return make


def delete_op_for(meta: ModelMeta) -> Callable[[str, dict[str, str]], WriteOp]:
    def make(id_text: str, stored: dict[str, str]) -> WriteOp:
        return DeleteOp(meta, Locator(meta, id_text=id_text), expect=stored)

    return make


INDEX_BATCH = 1000
"""Records per script call when a bulk delete walks one equality index (revoke every session of
one user: one round trip per 1,000 sessions)."""


def equality_key(meta: ModelMeta, query: Query) -> str | None:
    """The equality index key that holds exactly the records ``query`` selects, if there is one."""
    where = query.where
    if not isinstance(where, Compare) or where.op != "eq" or where.field == "id":
        return None
    field = meta.fields[where.field]
    if field.index != "equality":
        return None
    return meta.keys.equality(where.field, None if where.value is None else field.codec.token(where.value))


async def delete_matching(engine: WriteEngine, meta: ModelMeta, query: Query, test: Matcher) -> int:
    """``delete_many``: an exact equality is deleted by the script walking its index; anything
    else reads, tests and deletes each record."""
    key = equality_key(meta, query)
    if key is not None and engine.backend.features.scripting:
        deleted = 0
        try:
            while True:
                op = DeleteIndexedOp(meta, key, INDEX_BATCH)
                await engine.run([op])
                done: int
                examined: int
                done, examined = op.result
                deleted += done
                if examined < INDEX_BATCH:
                    return deleted
        except ScriptsRefused:
            pass
    return await write_matching(engine, meta, query, test, delete_op_for(meta))
