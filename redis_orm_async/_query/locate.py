"""Locating one record from a ``find_unique``-style where: by its id, or by one unique claim."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import QueryError
from .._model.schema import ModelMeta


@dataclass(frozen=True, slots=True)
class Locator:
    """Where a single record is: by id, or by the claim key of a unique value."""

    meta: ModelMeta
    id_text: str | None = None
    claim: str | None = None


def equalities(where: Mapping[str, Any]) -> dict[str, Any]:
    """A unique where's values, ``{"email": {"eq": v}}`` read as ``{"email": v}``."""
    return {
        name: value["eq"] if isinstance(value, Mapping) and len(value) == 1 and "eq" in value else value
        for name, value in where.items()
    }


def is_unique_where(meta: ModelMeta, where: Any) -> bool:
    """Whether ``where`` names one record by its id or a whole unique constraint, with plain
    non-null values: what ``update`` and ``delete`` locate directly rather than as a query."""
    if not isinstance(where, Mapping) or not where:
        return False
    values = equalities(where)
    if any(value is None or isinstance(value, Mapping | list | tuple | set) for value in values.values()):
        return False
    names = set(values)
    return names == {"id"} or any(set(constraint.fields) == names for constraint in meta.uniques)


def unique_locator(meta: ModelMeta, where: Mapping[str, Any]) -> Locator:
    """Turn a ``find_unique``-style where into a locator: by id, or by one unique constraint."""
    if type(where) is dict and len(where) == 1:  # the usual lookups, checked as below
        ((name, value),) = where.items()
        if name == "id" and type(value) in (str, int):
            return Locator(meta, id_text=meta.id_text(value))
        single = meta.single_uniques.get(name)
        if single is not None and value is not None and not isinstance(value, Mapping | list | tuple | set):
            constraint, field = single
            text = field.text_of(value)
            claim = None if text is None else meta.claim_key(constraint, {field.name: text}, "")
            if claim is not None:
                return Locator(meta, claim=claim)
    if not isinstance(where, Mapping) or not where:
        raise QueryError(f"{meta.name}: a unique lookup needs a non-empty where mapping")
    where = equalities(where)
    for name, value in where.items():
        if isinstance(value, Mapping | list | tuple | set):
            raise QueryError(
                f"{meta.name}.{name}: a unique lookup takes equality values only, got {type(value).__name__}",
                meta={"field": name},
            )
        if name != "id" and meta.field(name) is None:
            hint = meta.field_hint(name)
            raise QueryError(f"{meta.name} has no field {name!r}{hint}", meta={"field": name})
    names = set(where)
    if names == {"id"}:
        return Locator(meta, id_text=meta.id_text(where["id"]))
    stored = {_stored(meta, name): name for name in names}
    for constraint in meta.uniques:
        if set(constraint.fields) == set(stored):
            encoded: dict[str, str | None] = {}
            id_text = ""
            for name in constraint.fields:
                if name == "id":
                    id_text = meta.id_text(where[name])
                else:
                    encoded[name] = meta.fields[name].text_of(where[stored[name]])
            claim = meta.claim_key(constraint, encoded, id_text)
            if claim is None:
                raise QueryError(f"{meta.name}: a unique lookup cannot match null values")
            return Locator(meta, claim=claim)
    accepted = ["id", *("+".join(_attribute(meta, name) for name in c.fields) for c in meta.uniques)]
    raise QueryError(
        f"{meta.name}: {sorted(names)} is not the id or a unique constraint; use one of {accepted}",
        meta={"fields": sorted(names)},
    )


def _stored(meta: ModelMeta, name: str) -> str:
    field = meta.field(name)
    return name if field is None else field.name


def _attribute(meta: ModelMeta, name: str) -> str:
    field = meta.fields.get(name)
    return name if field is None else field.attr
