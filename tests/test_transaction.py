"""orm.transaction(): a unit of work applied in one MULTI/EXEC, or not at all."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from redis_orm_async import Orm, OrmError, Schema, UniqueConstraintError

from .models import User

SCHEMA = Schema([User])
MakeOrm = Callable[..., Orm]


async def test_queued_writes_land_together_at_exit(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    old = await users.create(data={"email": "old@x.io", "age": 1})
    async with orm.transaction() as tx:
        new = tx.repo(User).create(data={"email": "new@x.io", "age": 2})
        moved = tx.repo(User).update(where={"id": old.id}, data={"age": 3})
        gone = tx.repo(User).delete(where={"email": "old@x.io"})
        assert await users.find_unique(where={"id": new.id}) is None  # reads do not see queued writes
        with pytest.raises(OrmError, match="not been applied"):
            _ = moved.value
    assert await users.find_unique(where={"id": new.id}) == new
    assert moved.value is not None and moved.value.age == 3
    assert gone.value is not None and gone.value.id == old.id
    assert await users.count() == 1 and (await orm.audit(User)).ok


async def test_an_exception_discards_every_queued_write(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    with pytest.raises(RuntimeError):
        async with orm.transaction() as tx:
            tx.repo(User).create(data={"email": "a@x.io", "age": 1})
            raise RuntimeError("boom")
    assert await users.count() == 0


async def test_a_unique_violation_applies_nothing(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    await users.create(data={"email": "taken@x.io", "age": 1})
    with pytest.raises(UniqueConstraintError):
        async with orm.transaction() as tx:
            tx.repo(User).create(data={"email": "fresh@x.io", "age": 1})
            tx.repo(User).create(data={"email": "taken@x.io", "age": 2})
    assert await users.count() == 1
    assert await users.find_unique(where={"email": "fresh@x.io"}) is None


async def test_writes_in_one_unit_see_each_other(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    a = await users.create(data={"email": "a@x.io", "age": 1})
    async with orm.transaction() as tx:
        tx.repo(User).update(where={"id": a.id}, data={"email": "b@x.io"})
        tx.repo(User).create(data={"email": "a@x.io", "age": 2})
    assert (await users.find_unique(where={"email": "a@x.io"})) is not None
    assert (await users.find_unique(where={"email": "b@x.io"})) is not None
    assert (await orm.audit(User)).ok
    with pytest.raises(UniqueConstraintError):
        async with orm.transaction() as tx:
            tx.repo(User).create(data={"email": "c@x.io", "age": 1})
            tx.repo(User).create(data={"email": "c@x.io", "age": 2})
