"""Field expressions, typed projections, streams and the rest of the query surface on every
backend: the expression form answers as the dict form does, and each read costs what it says."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, TypedDict

import anyio
import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from redis_orm_async import (
    Field,
    HasMany,
    Model,
    Orm,
    QueryError,
    RelationNotLoadedError,
    Schema,
    and_,
    asc,
    col,
    contains,
    desc,
    has_many,
    in_,
    not_,
    or_,
    startswith,
)
from redis_orm_async import ValidationError as OrmValidationError

MakeOrm = Callable[..., Orm]


class Member(Model, key_prefix="member"):
    email: str = Field(unique=True)
    age: int | None = Field(None, index=True)
    status: str = Field("active", index=True)
    name: str = ""
    notes: ClassVar[HasMany[Memo]] = has_many("Memo", foreign_key="member_id")


class Memo(Model, key_prefix="memo"):
    member_id: str
    stars: int = Field(0, index=True)
    body: str = ""


class Box(Model, key_prefix="box"):
    id: int
    size: int = Field(0, index=True)


SCHEMA = Schema([Member, Memo, Box])
MEMBERS: list[dict[str, Any]] = [
    {"email": "ada@x.io", "age": 36, "status": "active", "name": "Ada"},
    {"email": "bob@x.io", "age": 25, "status": "banned", "name": "Bob"},
    {"email": "cy@x.io", "age": None, "status": "active", "name": "Cy"},
    {"email": "di@x.io", "age": 25, "status": "active", "name": "Di"},
    {"email": "ed@x.io", "age": 61, "status": "active", "name": "Ed"},
]


async def seeded(make_orm: MakeOrm) -> tuple[Orm, list[Member]]:
    orm = make_orm(SCHEMA)
    return orm, await orm.repo(Member).create_many(MEMBERS)


async def test_expressions_answer_as_the_dict_form(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm, made = await seeded(make_orm)
    members = orm.repo(Member)
    pairs: list[tuple[Any, dict[str, Any]]] = [
        ((Member.age >= 25, Member.status == "active"), {"age": {"gte": 25}, "status": "active"}),
        (((Member.age < 30) | (Member.age == None),), {"OR": [{"age": {"lt": 30}}, {"age": None}]}),  # noqa: E711
        ((~(Member.status == "active"),), {"NOT": {"status": "active"}}),
        ((not_(Member.status != "banned"),), {"NOT": {"status": {"not": "banned"}}}),
        ((and_(Member.age > 20, or_(Member.name == "Ada", Member.name == "Bob")),),
         {"age": {"gt": 20}, "OR": [{"name": "Ada"}, {"name": "Bob"}]}),
        ((col(Member.age).in_([25, None]),), {"age": {"in": [25, None]}}),
        ((in_(Member.age, ["36"]),), {"age": {"in": [36]}}),  # normalized through the field's type
        ((contains(Member.email, "d"), startswith(Member.name, "A")),
         {"email": {"contains": "d"}, "name": {"startswith": "A"}}),
        ((Member.email.startswith("e"),), {"email": {"startswith": "e"}}),
        ((col(Member.age).not_in([25]),), {"NOT": {"age": {"in": [25]}}}),
    ]  # fmt: skip
    for conditions, where in pairs:
        for order in ([desc(Member.age)], [asc(Member.status), col(Member.name).desc()]):
            dict_order = [{o.field: "desc" if o.descending else "asc"} for o in order]
            expected = [m.id for m in await members.find_many(where=where, order_by=dict_order)]
            found = await members.find_many(*conditions, order_by=order)
            assert [m.id for m in found] == expected, where
        assert await members.count(*conditions) == await members.count(where=where)
        first = await members.find_first(*conditions, order_by=desc(Member.age))
        assert first == await members.find_one(where=where, order_by={"age": "desc"})
    both = await members.find_many(Member.age >= 25, where={"status": "active"})
    assert {m.name for m in both} == {"Ada", "Di", "Ed"}
    assert {m.name for m in await members.find_many(where=Member.age > 30)} == {"Ada", "Ed"}
    assert await members.count(where=[Member.age > 30, Member.name == "Ed"]) == 1
    assert len(made) == 5


async def test_bulk_writes_and_nested_relation_filters_take_expressions(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm, made = await seeded(make_orm)
    members, memos = orm.repo(Member), orm.repo(Memo)
    ada = made[0]
    await memos.create_many([{"member_id": ada.id, "stars": s, "body": f"b{s}"} for s in (5, 1, 3, 9)])
    assert await members.update_many(Member.age == 25, {"name": "twenty-five"}) == 2
    assert {m.email for m in await members.find_many(Member.name == "twenty-five")} == {"bob@x.io", "di@x.io"}
    loaded = await members.find_unique(
        {"id": ada.id},
        include={"notes": {"where": Memo.stars > 2, "order_by": desc(Memo.stars), "take": 2}},
    )
    assert loaded is not None and [n.stars for n in loaded.notes] == [9, 5]
    assert await members.delete_many(Member.status == "banned") == 1
    assert await members.delete_many(and_(Member.age > 60, Member.age < 70)) == 1
    assert {m.name for m in await members.find_many()} == {"Ada", "Cy", "twenty-five"}
    assert (await orm.audit(Member)).ok


async def test_range_orders_and_pages_as_redisca_did(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    boxes = orm.repo(Box)
    await boxes.create_many([{"id": i, "size": (i * 7) % 50} for i in range(40)])
    window = await boxes.find_many(col(Box.size).range(10, 30, start=2, num=5))
    every = sorted((b.size, b.id) for b in await boxes.find_many() if 10 <= b.size <= 30)
    assert [(b.size, b.id) for b in window] == every[2:7]
    open_ended = await boxes.find_many(col(Box.size).range(minval=45))
    assert [b.size for b in open_ended] == sorted(b.size for b in await boxes.find_many() if b.size >= 45)
    # combined with other conditions a range is just its bounds
    assert await boxes.count(col(Box.size).range(10, 30), Box.id < 20) == sum(
        1 for b in await boxes.find_many() if 10 <= b.size <= 30 and b.id < 20
    )
    assert [b.id for b in await boxes.find_many(order_by=desc(Box.id), take=3)] == [39, 38, 37]


async def test_mistakes_are_query_errors_before_any_io(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm, _ = await seeded(make_orm)
    members = orm.repo(Member)
    before = orm.backend.stats.snapshot()
    with pytest.raises(QueryError, match="truth value"):
        await members.find_many(Member.age > 1 and Member.age < 9)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="truth value"):
        _ = 25 in [Member.age]
    with pytest.raises(QueryError, match="plain True"):
        await members.find_many(True)
    with pytest.raises(QueryError, match="not a field of Member"):
        await members.find_many(Memo.stars > 1)
    with pytest.raises(QueryError, match=r"Member\.age gt: bad value"):
        await members.find_many(Member.age > "old")  # type: ignore[operator]
    with pytest.raises(QueryError, match=r"Member\.age contains"):
        await members.find_many(col(Member.age).contains("2"))
    with pytest.raises(QueryError, match="where="):
        await members.find_many({"age": 3})  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="col"):
        col(3)
    with pytest.raises(QueryError, match="not a field of Member"):
        await members.find_many(order_by=desc(Memo.stars))
    assert orm.backend.stats.snapshot() == before


def test_model_classes_and_instances_behave_as_pydantic_models() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Base(Model, key_prefix="base"):
            id: int
            kind: str = Field("a", index=True)

        class Child(Base, key_prefix="child"):
            kind: str = "b"

    assert repr(Child.kind == "x") == "Child.kind eq 'x'"
    assert set(Child.model_fields) == {"id", "kind"}
    child = Child(id=1)
    assert child.kind == "b" and child.model_copy(update={"kind": "c"}).kind == "c"
    assert child.model_dump() == {"id": 1, "kind": "b"}
    with pytest.raises(AttributeError):
        Child.nope  # type: ignore[attr-defined]  # noqa: B018
    assert isinstance(Member.__dict__["notes"], HasMany) and Member.notes.name == "notes"
    with pytest.raises(RelationNotLoadedError):
        Member(email="a@x.io").notes  # noqa: B018


class Contact(BaseModel):
    email: str
    age: int | None


class ContactRow(TypedDict):
    name: str


async def test_typed_projections_read_only_their_fields(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm, made = await seeded(make_orm)
    members = orm.repo(Member)
    contacts = await members.find_many(Member.age >= 25, select=Contact, order_by=asc(Member.email))
    assert contacts == [Contact(email="ada@x.io", age=36), Contact(email="bob@x.io", age=25),
                        Contact(email="di@x.io", age=25), Contact(email="ed@x.io", age=61)]  # fmt: skip
    rows = await members.find_many(where={"status": "banned"}, select=ContactRow)
    assert rows == [{"name": "Bob"}]
    assert await members.find_unique({"email": {"eq": "cy@x.io"}}, select=Contact) == Contact(
        email="cy@x.io", age=None
    )
    assert await members.find_first(Member.age > 100, select=Contact) is None
    created = await members.create({"email": "fay@x.io", "age": 3, "name": "Fay"}, select=ContactRow)
    assert created == {"name": "Fay"}
    updated = await members.update({"email": "fay@x.io"}, {"age": 4}, select=Contact)
    assert updated == Contact(email="fay@x.io", age=4)
    upserted = await members.upsert({"email": "gil@x.io"}, create={"age": 1}, update={}, select=Contact)
    assert upserted == Contact(email="gil@x.io", age=1)
    many = await members.create_many([{"email": "h@x.io"}, {"email": "i@x.io"}], select={"email": True})
    assert [m.model_dump() for m in many] == [{"id": many[0].id, "email": "h@x.io"},
                                              {"id": many[1].id, "email": "i@x.io"}]  # fmt: skip
    with_relation = await members.create({"email": "j@x.io"}, select={"email": True, "notes": True})
    assert with_relation.notes == [] and with_relation.email == "j@x.io"

    class Wrong(BaseModel):
        emial: str

    with pytest.raises(QueryError, match=r"Wrong\.emial is not a field of Member"):
        await members.find_many(select=Wrong)

    class Mistyped(BaseModel):
        name: int

    with pytest.raises(OrmValidationError, match="does not fit Mistyped"):
        await members.find_many(select=Mistyped)
    assert made


async def test_stream_walks_everything_in_order_a_batch_at_a_time(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(SCHEMA)
    boxes = orm.repo(Box)
    await boxes.create_many([{"id": i, "size": (i * 13) % 17} for i in range(53)])
    expected = [b.id for b in await boxes.find_many(Box.size > 3, order_by=desc(Box.size))]
    start = orm.backend.stats.round_trips
    seen = [b.id async for b in boxes.stream(Box.size > 3, order_by=desc(Box.size), batch=10)]
    assert seen == expected
    batches = len(expected) // 10 + 1
    assert orm.backend.stats.round_trips - start <= 2 * batches
    by_id = [b.id async for b in boxes.stream(where={"size": {"lt": 9}}, batch=7)]
    assert by_id == [b.id for b in await boxes.find_many(Box.size < 9)]
    assert [b async for b in boxes.stream(Box.size > 100)] == []
    assert [r async for r in boxes.stream(select={"size": True}, batch=20)][52].size == (52 * 13) % 17

    walked: list[int] = []
    async for box in boxes.stream(order_by=asc(Box.size), batch=5):
        walked.append(box.id)
        if len(walked) % 5 == 0:
            await boxes.delete({"id": box.id})  # the next page's cursor record is gone
    assert sorted(walked) == list(range(53)) and len(walked) == 53
    with pytest.raises(QueryError, match="batch"):
        boxes.stream(batch=0)
    with pytest.raises(QueryError, match="take"):
        boxes.stream(col(Box.size).range(1, 2, num=3))


async def test_update_and_delete_by_a_non_unique_where_act_on_the_first_match(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm, made = await seeded(make_orm)
    members = orm.repo(Member)
    first_active = min((m for m in made if m.status == "active"), key=lambda m: m.id)
    changed = await members.update({"status": "active"}, {"name": "first"})
    assert changed is not None and changed.id == first_active.id and changed.name == "first"
    oldest = await members.update(Member.age > 0, {"name": "oldest"}, order_by=desc(Member.age))
    assert oldest is not None and oldest.email == "ed@x.io"
    assert await members.update(Member.age > 100, {"name": "nobody"}) is None
    gone = await members.delete(Member.age == 25, order_by={"id": "desc"})
    assert gone is not None and gone.id == max(m.id for m in made if m.age == 25)
    assert await members.delete({"email": {"eq": "ada@x.io"}}) is not None
    assert await members.find_unique({"email": {"eq": "ada@x.io"}}) is None
    assert await members.exists({"email": {"eq": "bob@x.io"}})
    assert await members.count() == 3
    assert (await orm.audit(Member)).ok


async def test_a_list_of_ids_is_one_batched_lookup(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)
    members = orm.repo(Member)
    made = await members.create_many([{"email": f"m{i}@x.io", "age": i} for i in range(60)])
    brief = await members.create({"email": "brief@x.io"}, ttl=timedelta(milliseconds=30))
    wanted = [made[i].id for i in (50, 3, 17, 3)] + ["missing", brief.id]
    await anyio.sleep(0.06)
    plan = members.explain(where={"id": {"in": wanted}})
    assert plan.strategy == "lookup" and "round trips: 1" in str(plan)
    start = orm.backend.stats.round_trips
    found = await members.find_many(where={"id": {"in": wanted}}, order_by={"age": "desc"})
    assert orm.backend.stats.round_trips - start == 1
    assert [m.age for m in found] == [50, 17, 3]
    assert await members.count(col(Member.id).in_(wanted), Member.age > 10) == 2
    young = await members.find_many(where={"id": {"in": wanted}, "age": {"lt": 20}})
    assert [m.age for m in young] == [3, 17]
    assert await members.update_many(where={"id": {"in": wanted}}, data={"name": "x"}) == 3
    ints = orm.repo(Box)
    await ints.create_many([{"id": i, "size": i} for i in range(10)])
    assert [b.id for b in await ints.find_many(col(Box.id).in_([7, 2, 99]))] == [2, 7]
    assert ints.explain(Box.id == 4).strategy == "lookup"
