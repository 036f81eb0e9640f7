"""``orm.session()``: identity map, change tracking, and one atomic write at exit, on every backend."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio
import pytest

from redis_orm_async import (
    Field,
    Model,
    NotFoundError,
    Orm,
    OrmError,
    QueryError,
    Schema,
    TransactionConflictError,
    UniqueConstraintError,
)

from .models import Account, Everything, User

MakeOrm = Callable[..., Orm]


class Note(Model, key_prefix="note"):
    owner: str = Field(index=True)
    text: str = ""


SCHEMA = Schema([User, Everything, Note, Account])


async def test_each_record_is_loaded_once_and_is_the_same_object(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    ada = await users.create({"email": "ada@x.io", "age": 36})
    await users.create({"email": "bob@x.io", "age": 41})
    async with orm.session() as s:
        before = orm.backend.stats.round_trips
        first = await s.get(User, ada.id)
        assert orm.backend.stats.round_trips - before == 1
        again = await s.get(User, ada.id)
        assert orm.backend.stats.round_trips - before == 1, "a record in the map is not read again"
        by_email = await s.find_unique(User, {"email": "ada@x.io"})
        listed = await s.find_many(User, order_by={"age": "asc"})
        assert first is not None and first is again is by_email is listed[0]
        assert [u.email for u in listed] == ["ada@x.io", "bob@x.io"]
        assert await s.get(User, "missing") is None
        assert s.dirty == []
    async with orm.session() as s:
        before = orm.backend.stats.round_trips
        bob = await s.find_unique(User, {"email": "bob@x.io"})
        assert bob is not None and orm.backend.stats.round_trips - before == 1, "claim to record: one read"
        assert await s.get(User, bob.id) is bob and orm.backend.stats.round_trips - before == 1
        with pytest.raises(NotFoundError, match="no User matches the given email") as missing:
            await s.find_unique_or_raise(User, {"email": "nobody-secret@x.io"})
        assert "nobody-secret" not in str(missing.value)


async def test_only_changed_fields_of_dirty_records_are_written_in_one_round_trip(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    made = [await users.create({"email": f"u{i}@x.io", "age": 20 + i}) for i in range(4)]
    async with orm.session() as s:
        a, b, c, d = [await s.get(User, user.id) for user in made]
        assert a and b and c and d
        a.age = 99  # an indexed field: its entry moves
        b.email = "moved@x.io"  # a unique field: its claim moves
        s.delete(c)
        added = s.add(User(email="new@x.io", age=5))
        assert s.is_modified(a) and s.is_modified(added) and s.is_modified(c) and not s.is_modified(d)
        await users.update({"id": d.id}, {"name": "changed elsewhere"})  # d is not written by s
        before = orm.backend.stats.round_trips
    assert orm.backend.stats.round_trips - before == 1, "the whole flush is one script call"
    after = {user.id: user for user in await users.find_many()}
    assert after[a.id].age == 99 and after[b.id].email == "moved@x.io"
    assert await users.find_unique({"email": made[1].email}) is None
    assert c.id not in after and after[added.id] == added
    assert after[d.id].name == "changed elsewhere", "a record the session did not change is not written"
    assert await users.count(where={"age": 99}) == 1
    assert (await orm.audit(User)).ok


async def test_a_conflicting_flush_writes_nothing(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    a, b = (
        await users.create({"email": "a@x.io", "age": 1}),
        await users.create({"email": "b@x.io", "age": 2}),
    )
    with pytest.raises(TransactionConflictError) as caught:
        async with orm.session() as s:
            mine_a, mine_b = await s.get(User, a.id), await s.get(User, b.id)
            assert mine_a is not None and mine_b is not None
            mine_a.age, mine_b.age = 10, 20
            s.add(User(email="c@x.io", age=3))
            await users.update({"id": b.id}, {"name": "someone else"})  # b changed since loaded
    assert caught.value.retryable
    assert await users.find_unique({"id": a.id}) == a and await users.count() == 2


async def test_nothing_is_written_when_the_block_raises(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    ada = await users.create({"email": "ada@x.io", "age": 36})
    with pytest.raises(RuntimeError):
        async with orm.session() as s:
            loaded = await s.get(User, ada.id)
            assert loaded is not None
            loaded.age = 1
            s.add(User(email="x@x.io", age=2))
            raise RuntimeError("the endpoint failed")
    assert await users.find_unique({"id": ada.id}) == ada and await users.count() == 1
    with pytest.raises(OrmError, match="exited"):
        await s.get(User, ada.id)


async def test_a_concurrent_change_is_a_retryable_conflict_never_an_overwrite(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    ada = await users.create({"email": "ada@x.io", "age": 36})
    for attempt in range(2):
        try:
            async with orm.session() as s:
                loaded = await s.get(User, ada.id)
                assert loaded is not None
                if attempt == 0:
                    await users.update({"id": ada.id}, {"age": {"increment": 1}})  # someone else
                loaded.name = "Ada"
        except TransactionConflictError:
            assert attempt == 0
    final = await users.find_unique({"id": ada.id})
    assert final is not None and final.age == 37 and final.name == "Ada", "both changes kept"


async def test_an_update_of_a_record_deleted_meanwhile_is_dropped_and_the_rest_lands(
    make_orm: MakeOrm,
) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    gone, kept = (
        await users.create({"email": "g@x.io", "age": 1}),
        await users.create({"email": "k@x.io", "age": 2}),
    )
    async with orm.session() as s:
        a, b = await s.get(User, gone.id), await s.get(User, kept.id)
        assert a is not None and b is not None
        a.age, b.age = 10, 20
        await users.delete({"id": gone.id})
    assert await users.find_unique({"id": gone.id}) is None, "the delete stays: the update came first"
    updated = await users.find_unique({"id": kept.id})
    assert updated is not None and updated.age == 20
    assert (await orm.audit(User)).ok


async def test_a_taken_unique_value_refuses_the_whole_flush(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    await users.create({"email": "taken@x.io", "age": 1})
    mine = await users.create({"email": "mine@x.io", "age": 2})
    with pytest.raises(UniqueConstraintError):
        async with orm.session() as s:
            loaded = await s.get(User, mine.id)
            assert loaded is not None
            loaded.age = 3
            s.add(User(email="taken@x.io", age=4))
    assert await users.find_unique({"id": mine.id}) == mine and await users.count() == 2


async def test_in_place_changes_are_tracked_and_nulls_are_removed(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    every = orm.repo(Everything)
    made = await every.create({"data": {"tags": ["a"]}, "items": [1], "text": "t", "number": 5})
    async with orm.session() as s:
        loaded = await s.get(Everything, made.id)
        assert loaded is not None and loaded.data is not None and loaded.items is not None
        loaded.data["tags"].append("b")
        loaded.items.append(2)
        loaded.text = None
    after = await every.find_unique({"id": made.id})
    assert after is not None and after.data == {"tags": ["a", "b"]} and after.items == [1, 2]
    assert after.text is None and after.number == 5
    assert await every.count(where={"text": None}) == 1 and (await orm.audit(Everything)).ok


async def test_an_added_instance_is_found_by_id_and_can_be_dropped(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    async with orm.session() as s:
        added = s.add(User(email="n@x.io", age=1))
        assert await s.get(User, added.id) is added
        assert s.add(added) is added
        with pytest.raises(OrmError, match="generated"):
            s.add(User(id=added.id, email="other@x.io", age=1))
        acme = s.add(Account(id="acme", org="o", slug="s"))
        with pytest.raises(OrmError, match="another instance"):
            s.add(Account(id="acme", org="o", slug="t"))
        s.delete(acme)
        s.delete(added)
        assert await s.get(User, added.id) is None
        with pytest.raises(OrmError, match="loaded or added"):
            s.delete(User(email="stranger@x.io", age=1))
    assert await orm.repo(User).count() == 0


async def test_a_flush_spanning_models_is_one_atomic_write_or_refused_on_a_cluster(
    make_orm: MakeOrm, backend_name: str
) -> None:
    orm = make_orm(SCHEMA)
    async with orm.session() as s:
        s.add(User(email="two@x.io", age=1))
        s.add(Note(owner="two"))
        if backend_name != "redis-cluster":
            before = orm.backend.stats.round_trips
            await s.flush()
            assert orm.backend.stats.round_trips - before == 1
            assert await orm.repo(Note).count() == 1 and await orm.repo(User).count() == 1
            return
        with pytest.raises(QueryError, match="one model's keys"):
            await s.flush()
        s.delete(next(i for i in s.dirty if isinstance(i, Note)))
    assert await orm.repo(Note).count() == 0 and await orm.repo(User).count() == 1


async def test_a_cancelled_flush_is_all_or_nothing_and_never_applied_twice(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    made = await users.create_many([{"email": f"c{i}@x.io", "age": i} for i in range(200)])
    delays = [0, 0, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.05]
    for round_no, delay in enumerate(delays):  # cancelled before the send, after it, or not at all
        s = orm.session()
        loaded = await s.find_many(User, take=200)
        assert len(loaded) == 200
        for user in loaded:
            user.age = 1000 + round_no
            user.email = f"r{round_no}-{user.id}@x.io"
        with anyio.move_on_after(delay):
            await s.flush()
        ages = {user.age for user in await users.find_many()}
        assert ages in ({1000 + round_no}, {1000 + round_no - 1} if round_no else {u.age for u in made})
        with contextlib.suppress(TransactionConflictError):
            await s.flush()  # applied already: refused as a conflict; not applied: applied now
        assert {user.age for user in await users.find_many()} == {1000 + round_no}
        report = await orm.audit(User)
        assert report.ok, str(report)
    assert await users.count(where={"age": 1011}) == 200
