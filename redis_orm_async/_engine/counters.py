"""Contended counters: integer increments applied server-side in one Lua script.

The general update path reads the record under an optimistic guard and retries when another
writer got there first; that is exact but, with 64 writers on one rate-limit bucket, most attempts
are retries. An update that only increments or decrements plain integer fields of a record found
by id needs no read: the script checks that the record exists and that each field is set, then
runs HINCRBY and moves the field's range-index score in the same atomic step, on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._backends.protocol import Backend
from .._errors import ValidationError
from .._model.model import FieldOptions
from .._model.schema import ModelMeta
from .._query.changes import FieldChange
from .._scripts import load

COUNTER_SCRIPT = load("counters")


def _plain_int_field(meta: ModelMeta, name: str) -> bool:
    """An int field whose new value needs no validation beyond being an int."""
    field = meta.fields[name]
    if field.codec.kind != "int" or field.unique or any(name in c.fields for c in meta.uniques):
        return False
    info = meta.model.model_fields[name]
    if any(not isinstance(item, FieldOptions) for item in info.metadata):
        return False
    decorators = meta.model.__pydantic_decorators__
    if decorators.model_validators:
        return False
    return not any(
        name in v.info.fields or "*" in v.info.fields for v in decorators.field_validators.values()
    )


def counter_eligible(meta: ModelMeta, changes: Mapping[str, FieldChange]) -> bool:
    return bool(changes) and all(
        change.op in ("increment", "decrement")
        and isinstance(change.value, int)
        and not isinstance(change.value, bool)
        and _plain_int_field(meta, name)
        for name, change in changes.items()
    )


async def apply_counters(
    backend: Backend, meta: ModelMeta, id_text: str, changes: Mapping[str, FieldChange]
) -> list[Any] | None:
    """Run the increments; the record's HASH as a flat list, or None when there is no record."""
    keys = [meta.keys.record(id_text)]
    args: list[str | int] = [id_text]
    for name, change in changes.items():
        delta = change.value if change.op == "increment" else -change.value
        index = 0
        if meta.fields[name].index == "range":
            keys.append(meta.keys.range(name))
            index = len(keys)
        args.extend((name, delta, index))
    reply = await backend.eval(COUNTER_SCRIPT, keys, args)
    if not reply:
        return None
    if reply[0] == "null" and len(reply) == 2:
        raise ValidationError(
            f"{meta.name}.{reply[1]}: cannot increment a null value", meta={"field": reply[1]}
        )
    result: list[Any] = reply
    return result
