"""The public surface: one flat namespace, and the capability object."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

import redis_orm_async
from redis_orm_async import Capabilities, Orm, Schema

from .models import User

MakeOrm = Callable[..., Orm]


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in dir(redis_orm_async) if not name.startswith("_")}
    modules = {"testing", "fastapi"}  # integrations, imported as redis_orm_async.<name>
    assert set(redis_orm_async.__all__) | modules | {"__version__"} >= public
    for name in redis_orm_async.__all__:
        assert hasattr(redis_orm_async, name), name
    assert sorted(redis_orm_async.__all__) == sorted(set(redis_orm_async.__all__))


async def test_capabilities_are_frozen_and_truthful(make_orm: MakeOrm) -> None:
    orm = make_orm(Schema([User]))
    caps = orm.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.supports_transactions is False
    assert caps.supports_joins is False
    assert caps.supports_generated_integer_ids is False
    assert caps.supports_schema_qualified_names is False
    assert caps.supports_ttl and caps.supports_unique_constraints and caps.supports_atomic_increments
    assert caps.backend_kind == orm.backend.features.kind
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.supports_transactions = True  # type: ignore[misc]


async def test_push_and_apply_schema_are_noops(make_orm: MakeOrm, raw: object) -> None:
    orm = make_orm(Schema([User]))
    before = orm.backend.stats.snapshot()
    await orm.push_schema()
    await orm.apply_schema()
    assert orm.backend.stats.snapshot() == before
