"""Contract tests of the repository: every method, every error, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings

from redis_orm_async import (
    NotFoundError,
    Orm,
    OrmError,
    QueryError,
    Schema,
    TransactionConflictError,
    UniqueConstraintError,
    ValidationError,
)
from redis_orm_async._query.changes import parse_changes

from .models import Account, Everything, Status, Ticket, User
from .strategies import EVERYTHING, ODD_TEXT

SCHEMA = Schema([User, Everything, Account, Ticket])
MakeOrm = Callable[..., Orm]


async def test_create_then_find_by_id_and_unique(make_orm: MakeOrm) -> None:
    users = make_orm(SCHEMA).repo(User)
    created = await users.create(data={"email": "a@x.io", "age": "30"})
    assert isinstance(created, User) and created.age == 30 and len(created.id) == 26
    assert await users.find_unique(where={"id": created.id}) == created
    assert await users.find_unique(where={"email": "a@x.io"}) == created
    assert await users.find_unique(where={"email": "nobody@x.io"}) is None
    assert await users.find_unique(where={"id": "missing"}) is None
    assert await users.exists(where={"id": created.id})
    assert await users.exists(where={"email": "a@x.io"})
    assert not await users.exists(where={"email": "b@x.io"})
    assert await users.count() == 1


async def test_create_accepts_a_model_instance(make_orm: MakeOrm) -> None:
    users = make_orm(SCHEMA).repo(User)
    user = User(email="i@x.io", age=1)
    assert await users.create(data=user) == user
    assert await users.find_unique(where={"id": user.id}) == user


async def test_unique_violation_names_constraint_and_loses_nothing(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    users = make_orm(SCHEMA).repo(User)
    first = await users.create(data={"email": "dup@x.io", "age": 1})
    keys_before = sorted(await raw.keys("*"))
    with pytest.raises(UniqueConstraintError) as caught:
        await users.create(data={"email": "dup@x.io", "age": 2})
    assert caught.value.constraint == "email" and caught.value.fields == ("email",)
    assert caught.value.code == "unique_violation" and not caught.value.retryable
    assert sorted(await raw.keys("*")) == keys_before
    assert await users.find_unique(where={"email": "dup@x.io"}) == first


async def test_manual_ids_and_compound_uniques(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    accounts, tickets = orm.repo(Account), orm.repo(Ticket)
    acct = await accounts.create(data={"id": "acme:main", "org": "acme", "slug": "main"})
    assert await accounts.find_unique(where={"org": "acme", "slug": "main"}) == acct
    with pytest.raises(UniqueConstraintError) as caught:
        await accounts.create(data={"id": "other", "org": "acme", "slug": "main"})
    assert caught.value.constraint == "org+slug"
    with pytest.raises(UniqueConstraintError) as same_id:
        await accounts.create(data={"id": "acme:main", "org": "x", "slug": "y"})
    assert same_id.value.constraint == "id"
    await accounts.create(data={"id": "other", "org": "acme", "slug": "second"})
    ticket = await tickets.create(data={"id": 7, "org": "acme", "number": 1})
    assert await tickets.find_unique(where={"id": "7"}) == ticket
    assert await tickets.find_unique(where={"org": "acme", "number": "1"}) == ticket
    with pytest.raises(UniqueConstraintError):
        await tickets.create(data={"id": 8, "org": "acme", "number": 1})
    await tickets.create(data={"id": 9, "org": "other", "number": 1})
    assert await tickets.count() == 2 and await accounts.count() == 2
    assert (await orm.audit(Ticket)).ok and (await orm.audit(Account)).ok


async def test_update_writes_only_changes_and_moves_indexes(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    user = await users.create(data={"email": "u@x.io", "age": 20, "name": "Ann"})
    await raw.hset(f"{{user}}:r:{user.id}", "foreign", "kept")
    updated = await users.update(where={"id": user.id}, data={"email": "v@x.io", "status": "banned"})
    assert updated is not None and updated.email == "v@x.io" and updated.name == "Ann"
    assert await raw.hget(f"{{user}}:r:{user.id}", "foreign") == "kept"
    assert await users.find_unique(where={"email": "u@x.io"}) is None
    assert await users.find_unique(where={"email": "v@x.io"}) == updated
    assert await raw.zrange("{user}:i:status:=banned", 0, -1) == [user.id]
    assert await raw.zrange("{user}:i:status:=active", 0, -1) == []
    await users.create(data={"email": "u@x.io", "age": 5})
    assert (await orm.audit(User)).ok


async def test_update_by_unique_and_missing_records(make_orm: MakeOrm) -> None:
    users = make_orm(SCHEMA).repo(User)
    await users.create(data={"email": "w@x.io", "age": 1})
    assert (await users.update(where={"email": "w@x.io"}, data={"age": 2})) is not None
    assert (await users.find_unique_or_raise(where={"email": "w@x.io"})).age == 2
    assert await users.update(where={"id": "nope"}, data={"age": 3}) is None
    assert await users.update(where={"email": "nope@x.io"}, data={"age": 3}) is None
    with pytest.raises(NotFoundError):
        await users.find_unique_or_raise(where={"email": "nope@x.io"})


async def test_setting_none_removes_the_field(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    users = make_orm(SCHEMA).repo(User)
    user = await users.create(data={"email": "n@x.io", "age": 1, "name": "Old"})
    assert await raw.hget(f"{{user}}:r:{user.id}", "name") == "Old"
    updated = await users.update(where={"id": user.id}, data={"name": None})
    assert updated is not None and updated.name is None
    assert not await raw.hexists(f"{{user}}:r:{user.id}", "name")
    found = await users.find_unique(where={"id": user.id})
    assert found is not None and found.name is None


async def test_unique_value_can_be_taken_after_it_was_released(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    a = await users.create(data={"email": "a@x.io", "age": 1})
    b = await users.create(data={"email": "b@x.io", "age": 1})
    with pytest.raises(UniqueConstraintError):
        await users.update(where={"id": b.id}, data={"email": "a@x.io"})
    await users.update(where={"id": a.id}, data={"email": "c@x.io"})
    moved = await users.update(where={"id": b.id}, data={"email": "a@x.io"})
    assert moved is not None and moved.email == "a@x.io"
    await users.delete(where={"id": moved.id})
    await users.create(data={"email": "a@x.io", "age": 2})
    assert (await orm.audit(User)).ok


async def test_upsert_creates_then_updates_and_guards_the_target(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    created = await users.upsert(where={"email": "up@x.io"}, create={"age": 1}, update={"age": 99})
    assert created.email == "up@x.io" and created.age == 1
    updated = await users.upsert(
        where={"email": "up@x.io"}, create={"age": 1}, update={"age": {"increment": 5}}
    )
    assert updated.id == created.id and updated.age == 6
    with pytest.raises(ValidationError, match="conflict target"):
        await users.upsert(where={"email": "up@x.io"}, create={"age": 1}, update={"email": "z@x.io"})
    tickets = orm.repo(Ticket)
    t = await tickets.upsert(where={"id": 5}, create={"org": "o", "number": 1}, update={"title": "x"})
    assert t.id == 5 and t.title == ""
    t2 = await tickets.upsert(where={"org": "o", "number": 1}, create={"id": 6}, update={"title": "y"})
    assert t2.id == 5 and t2.title == "y"
    assert await users.count() == 1 and (await orm.audit(User)).ok


async def test_delete_returns_the_record_and_cleans_every_key(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    user = await users.create(data={"email": "d@x.io", "age": 4})
    assert await users.delete(where={"email": "d@x.io"}) == user
    assert await users.delete(where={"id": user.id}) is None
    assert await raw.keys("*") == []
    assert await users.count() == 0


async def test_bulk_writes_by_ids(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    created = await users.create_many([{"email": f"{i}@x.io", "age": i} for i in range(30)])
    assert len(created) == 30 and await users.count() == 30
    ids = [u.id for u in created[:10]]
    assert await users.update_many(where={"id": {"in": [*ids, "missing"]}}, data={"status": "x"}) == 10
    assert all(
        u is not None and u.status == "x" for u in [await users.find_unique(where={"id": i}) for i in ids]
    )
    assert await users.delete_many(where={"id": {"in": ids}}) == 10
    assert await users.count() == 20
    assert (await orm.audit(User)).ok


async def test_create_many_is_validated_before_anything_is_written(make_orm: MakeOrm) -> None:
    users = make_orm(SCHEMA).repo(User)
    with pytest.raises(ValidationError):
        await users.create_many([{"email": "ok@x.io", "age": 1}, {"email": "bad@x.io", "age": "x"}])
    with pytest.raises(ValidationError, match="share a unique value"):
        await users.create_many([{"email": "same@x.io", "age": 1}, {"email": "same@x.io", "age": 2}])
    assert await users.count() == 0
    await users.create(data={"email": "taken@x.io", "age": 1})
    with pytest.raises(UniqueConstraintError):
        await users.create_many([{"email": "new@x.io", "age": 1}, {"email": "taken@x.io", "age": 2}])
    assert await users.count() == 1


async def test_bad_input_gets_clear_errors_before_io(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    before = orm.backend.stats.snapshot()
    with pytest.raises(ValidationError) as wrong_type:
        await users.create(data={"email": "e@x.io", "age": "old"})
    assert wrong_type.value.errors()[0]["loc"] == ("age",)
    with pytest.raises(ValidationError):
        await users.create(data={"email": "e@x.io", "age": 1, "unknown": 1})
    with pytest.raises(ValidationError, match="no field 'nope'"):
        await users.update(where={"id": "x"}, data={"nope": 1})
    with pytest.raises(ValidationError, match="cannot be changed"):
        await users.update(where={"id": "x"}, data={"id": "y"})
    with pytest.raises(ValidationError, match="age"):
        await users.update(where={"id": "x"}, data={"age": "many"})
    with pytest.raises(QueryError, match="equality values only"):
        await users.find_unique(where={"email": {"startswith": "a"}})
    with pytest.raises(QueryError, match="not the id or a unique"):
        await users.find_unique(where={"age": 3})
    with pytest.raises(QueryError, match="no field"):
        await users.find_unique(where={"bogus": 3})
    with pytest.raises(ValidationError, match="id"):
        await users.find_unique(where={"id": 12})
    with pytest.raises(ValidationError):
        await orm.repo(Ticket).find_unique(where={"id": "seven"})
    with pytest.raises(ValidationError, match="increment needs a numeric"):
        await users.update(where={"id": "x"}, data={"email": {"increment": 1}})
    assert orm.backend.stats.snapshot() == before


async def test_atomic_number_operations(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    user = await users.create(data={"email": "n@x.io", "age": 10})
    for data, expected in [
        ({"increment": 5}, 15),
        ({"decrement": 3}, 12),
        ({"multiply": 2}, 24),
        ({"divide": 5}, 4),
        ({"set": 40}, 40),
    ]:
        updated = await users.update(where={"id": user.id}, data={"age": data})
        assert updated is not None and updated.age == expected
    assert (await orm.audit(User)).ok


@settings(max_examples=40)
@given(values=EVERYTHING)
async def test_every_field_type_round_trips_through_redis(make_orm: MakeOrm, values: dict[str, Any]) -> None:
    orm = make_orm(SCHEMA)
    repo = orm.repo(Everything)
    created = await repo.create(data=values)
    found = await repo.find_unique(where={"id": created.id})
    assert found == created
    assert found is not None and all(
        type(getattr(found, name)) is type(getattr(created, name)) for name in Everything.model_fields
    )
    await repo.delete(where={"id": created.id})


@settings(max_examples=30)
@given(text=ODD_TEXT, ident=ODD_TEXT.filter(bool))
async def test_odd_strings_in_ids_unique_and_indexed_values(make_orm: MakeOrm, text: str, ident: str) -> None:
    orm = make_orm(SCHEMA)
    accounts = orm.repo(Account)
    created = await accounts.create(data={"id": ident, "org": text, "slug": text, "plan": text})
    assert await accounts.find_unique(where={"id": ident}) == created
    assert await accounts.find_unique(where={"org": text, "slug": text}) == created
    assert (await orm.audit(Account)).ok
    assert await accounts.delete(where={"id": ident}) == created
    assert await accounts.count() == 0


async def test_a_megabyte_value_in_unique_and_indexed_fields(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    accounts = orm.repo(Account)
    huge = "x:{*}\n" * 200_000
    created = await accounts.create(data={"id": "big", "org": huge, "slug": huge, "plan": huge})
    assert await accounts.find_unique(where={"org": huge, "slug": huge}) == created
    with pytest.raises(UniqueConstraintError):
        await accounts.create(data={"id": "big2", "org": huge, "slug": huge})
    assert (await orm.audit(Account)).ok


async def test_datetimes_keep_what_was_given(make_orm: MakeOrm) -> None:
    repo = make_orm(SCHEMA).repo(Everything)
    naive = await repo.create(data={"at": datetime(2024, 5, 1, 12, 30, 15, 123456)})
    aware = await repo.create(data={"at": "2024-05-01T12:30:15.5+05:30"})
    found_naive = await repo.find_unique(where={"id": naive.id})
    found_aware = await repo.find_unique(where={"id": aware.id})
    assert found_naive is not None and found_naive.at == naive.at and found_naive.at.tzinfo is None
    assert found_aware is not None and found_aware.at is not None
    assert found_aware.at.utcoffset() == aware.at.utcoffset() if aware.at else False
    assert found_aware.at.astimezone(UTC) == datetime(2024, 5, 1, 7, 0, 15, 500000, tzinfo=UTC)


async def test_stored_text_is_readable_by_other_tools(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    repo = make_orm(SCHEMA).repo(Everything)
    rec = await repo.create(
        data={"number": 5, "flag": True, "price": Decimal("1.50"), "status": Status.BANNED, "items": [1, 2]}
    )
    stored = await raw.hgetall(f"{{every}}:r:{rec.id}")
    assert stored == {
        "id": rec.id, "number": "5", "flag": "true", "price": "1.50", "status": "banned", "items": "[1,2]",
    }  # fmt: skip


async def test_every_error_names_the_backend(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    kind = orm.backend.features.kind
    await users.create(data={"email": "k@x.io", "age": 1})
    failures = [
        users.create(data={"email": "k@x.io", "age": 1}),
        users.create(data={"email": "x@x.io", "age": "old"}),
        users.find_unique(where={"age": 1}),
        users.find_unique_or_raise(where={"email": "none@x.io"}),
    ]
    for failure in failures:
        with pytest.raises(OrmError) as caught:
            await failure
        assert caught.value.backend_kind == kind, repr(caught.value)


async def test_a_bulk_write_never_clobbers_a_record_that_changed_after_it_was_read(make_orm: MakeOrm) -> None:
    """update_many/delete_many read each record, test the where on it, and send the write with the
    record as read: here the record changes between the read and the write, so nothing is written
    and the bulk write reads it again."""
    from redis_orm_async._engine.ops import DeleteOp, UpdateOp, plain_changes
    from redis_orm_async._query.locate import Locator

    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    user = await users.create(data={"email": "m@x.io", "age": 1, "status": "active"})
    meta = orm.schema.meta(User)
    as_read = await orm.backend.execute(("HGETALL", meta.keys.record(user.id)))
    await users.update(where={"id": user.id}, data={"status": "banned"})  # after the read
    changes = plain_changes(meta, parse_changes(meta, {"age": 99}))
    assert changes is not None
    locator = Locator(meta, id_text=user.id)
    for op in (UpdateOp(meta, locator, changes, expect=as_read), DeleteOp(meta, locator, expect=as_read)):
        with pytest.raises(TransactionConflictError) as caught:
            await orm.engine.run([op])
        assert caught.value.retryable
    assert await users.find_unique(where={"id": user.id}) == user.model_copy(update={"status": "banned"})
    assert await users.update_many(where={"status": "banned"}, data={"age": 5}) == 1
