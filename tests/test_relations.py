"""Relations on every backend: declared and checked by the Schema, loaded only when asked, in a
constant number of round trips per level, never raising on a dangling foreign key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
import redis.asyncio as aioredis

from redis_orm_async import (
    BelongsTo,
    Field,
    HasMany,
    HasOne,
    ManyToMany,
    Model,
    Orm,
    QueryError,
    RelationNotLoadedError,
    Schema,
    SchemaError,
    belongs_to,
    create_orm,
    has_many,
    has_one,
    many_to_many,
)

MakeOrm = Callable[..., Orm]
ROOT = Path(__file__).resolve().parent.parent


class Writer(Model, key_prefix="writer"):
    name: str = Field(index=True)
    posts: ClassVar[HasMany[Entry]] = has_many("Entry", foreign_key="writer_id")
    profile: ClassVar[HasOne[Profile]] = has_one("Profile", foreign_key="writer_id")
    clubs: ClassVar[ManyToMany[Club]] = many_to_many(
        "Club", through="Seat", source_key="writer_id", target_key="club_id"
    )


class Entry(Model, key_prefix="entry"):
    title: str
    writer_id: str | None = None
    stars: int = Field(0, index=True)
    writer: ClassVar[BelongsTo[Writer]] = belongs_to(Writer, foreign_key="writer_id")
    notes: ClassVar[HasMany[Note]] = has_many("Note", foreign_key="entry_id")


class Note(Model, key_prefix="note"):
    entry_id: str
    body: str
    likes: int = 0
    entry: ClassVar[BelongsTo[Entry]] = belongs_to(Entry, foreign_key="entry_id")


class Profile(Model, key_prefix="profile"):
    writer_id: str
    bio: str = ""


class Club(Model, key_prefix="club"):
    name: str
    members: ClassVar[ManyToMany[Writer]] = many_to_many(
        Writer, through="Seat", source_key="club_id", target_key="writer_id"
    )


class Seat(Model, key_prefix="seat"):
    writer_id: str
    club_id: str
    role: str = "member"


class Team(Model, key_prefix="team"):
    id: int
    name: str
    players: ClassVar[HasMany[Player]] = has_many("Player", foreign_key="team_id")


class Player(Model, key_prefix="player"):
    id: int
    team_id: int | None = Field(None, index=True)
    team: ClassVar[BelongsTo[Team]] = belongs_to(Team, foreign_key="team_id")


SCHEMA = Schema([Writer, Entry, Note, Profile, Club, Seat, Team, Player])


async def seeded(make_orm: MakeOrm) -> tuple[Orm, dict[str, Any]]:
    orm = make_orm(SCHEMA)
    ada, bob, cy = await orm.repo(Writer).create_many([{"name": "ada"}, {"name": "bob"}, {"name": "cy"}])
    entries = await orm.repo(Entry).create_many([
        {"title": "a1", "writer_id": ada.id, "stars": 3},
        {"title": "a2", "writer_id": ada.id, "stars": 9},
        {"title": "a3", "writer_id": ada.id, "stars": 5},
        {"title": "b1", "writer_id": bob.id, "stars": 1},
        {"title": "orphan", "writer_id": "01GHOSTWRITER0000000000000", "stars": 2},
        {"title": "anon", "writer_id": None},
    ])  # fmt: skip
    by_title = {e.title: e for e in entries}
    await orm.repo(Note).create_many([
        {"entry_id": by_title["a2"].id, "body": "wow", "likes": 5},
        {"entry_id": by_title["a2"].id, "body": "meh", "likes": 1},
        {"entry_id": by_title["a2"].id, "body": "ok", "likes": 3},
        {"entry_id": by_title["b1"].id, "body": "hi", "likes": 0},
    ])  # fmt: skip
    await orm.repo(Profile).create({"writer_id": bob.id, "bio": "bob's"})
    red, blue = await orm.repo(Club).create_many([{"name": "red"}, {"name": "blue"}])
    await orm.repo(Seat).create_many([
        {"writer_id": ada.id, "club_id": red.id, "role": "chair"},
        {"writer_id": ada.id, "club_id": blue.id},
        {"writer_id": bob.id, "club_id": red.id},
        {"writer_id": cy.id, "club_id": "01GHOSTCLUB000000000000000"},
    ])  # fmt: skip
    return orm, {"ada": ada, "bob": bob, "cy": cy, "red": red, "blue": blue, **by_title}


def test_the_schema_resolves_relations_and_indexes_foreign_keys() -> None:
    entry = SCHEMA.meta(Entry)
    assert entry.fields["writer_id"].index == "equality", "has_many gets an equality index on its FK"
    assert SCHEMA.meta(Seat).fields["club_id"].index == "equality"
    assert SCHEMA.meta(Seat).fields["writer_id"].index == "equality"
    assert SCHEMA.meta(Player).fields["team_id"].index == "range", "a declared range index is kept"
    relation = SCHEMA.meta(Writer).relations["clubs"]
    assert (relation.kind, relation.target, relation.through) == ("many_to_many", "Club", "Seat")
    assert relation.to_many and not entry.relations["writer"].to_many


def test_bad_relation_declarations_are_schema_errors_naming_model_and_field() -> None:
    class Lonely(Model, key_prefix="lonely"):
        friends: ClassVar[HasMany[Entry]] = has_many("Entry", foreign_key="lonely_id")

    with pytest.raises(SchemaError, match=r"Lonely\.friends: Entry has no foreign key field 'lonely_id'"):
        Schema([Lonely, Entry, Writer, Note])

    class Stray(Model, key_prefix="stray"):
        owner_id: str
        owner: ClassVar[BelongsTo[Writer]] = belongs_to("Nobody", foreign_key="owner_id")

    with pytest.raises(SchemaError, match=r"Stray\.owner: relation target 'Nobody' is not in the schema"):
        Schema([Stray])

    class Numbered(Model, key_prefix="numbered"):
        team_id: str
        team: ClassVar[BelongsTo[Team]] = belongs_to(Team, foreign_key="team_id")

    with pytest.raises(SchemaError, match=r"Numbered\.team: foreign key Numbered\.team_id must be int"):
        Schema([Numbered, Team, Player])

    class Tagged(Model, key_prefix="tagged"):
        writer_id: dict[str, str]
        writer: ClassVar[BelongsTo[Writer]] = belongs_to(Writer, foreign_key="writer_id")

    with pytest.raises(SchemaError, match=r"Tagged\.writer_id must be str to hold Writer ids, not json"):
        Schema([Tagged, Writer, Entry, Note, Profile, Club, Seat])


async def test_relations_load_only_when_asked_and_never_do_hidden_io(make_orm: MakeOrm) -> None:
    orm, rows = await seeded(make_orm)
    ada = await orm.repo(Writer).find_unique({"id": rows["ada"].id})
    assert ada is not None
    before = orm.backend.stats.snapshot()
    with pytest.raises(RelationNotLoadedError, match=r"Writer\.posts was not loaded.*include"):
        _ = ada.posts
    with pytest.raises(RelationNotLoadedError):
        _ = rows["a1"].writer
    assert orm.backend.stats.snapshot() == before
    assert isinstance(Writer.posts, HasMany), "the class attribute is the descriptor"


async def test_nested_include_with_its_own_where_order_take_skip(make_orm: MakeOrm) -> None:
    orm, _ = await seeded(make_orm)
    writers = await orm.repo(Writer).find_many(
        order_by={"name": "asc"},
        include={
            "posts": {
                "where": {"stars": {"gte": 2}},
                "order_by": {"stars": "desc"},
                "take": 2,
                "include": {"notes": {"order_by": {"likes": "desc"}, "skip": 1}, "writer": True},
            },
            "profile": True,
            "clubs": {"order_by": {"name": "asc"}, "include": {"members": {"order_by": {"name": "desc"}}}},
        },
    )
    ada, bob, cy = writers
    assert [p.title for p in ada.posts] == ["a2", "a3"]
    assert [n.body for n in ada.posts[0].notes] == ["ok", "meh"]
    assert ada.posts[1].notes == []
    assert all(p.writer is not None and p.writer.name == "ada" for p in ada.posts)
    assert bob.posts == [], "b1 has one star, filtered by the nested where"
    assert ada.profile is None and bob.profile is not None and bob.profile.bio == "bob's"
    assert [c.name for c in ada.clubs] == ["blue", "red"]
    assert [m.name for m in ada.clubs[1].members] == ["bob", "ada"]
    assert [c.name for c in bob.clubs] == ["red"]
    assert cy.clubs == [], "a join row pointing at a missing club is skipped"


async def test_dangling_and_missing_foreign_keys_give_none_or_are_skipped(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm, rows = await seeded(make_orm)
    entries = await orm.repo(Entry).find_many(order_by={"title": "asc"}, include={"writer": True})
    writers = {e.title: (e.writer.name if e.writer else None) for e in entries}
    assert writers == {"a1": "ada", "a2": "ada", "a3": "ada", "anon": None, "b1": "bob", "orphan": None}
    stale = orm.schema.meta(Entry).keys.equality("writer_id", rows["bob"].id)
    await raw.zadd(stale, {rows["a1"].id: 0, "01GHOSTENTRY00000000000000": 0})
    bob = await orm.repo(Writer).find_unique({"id": rows["bob"].id}, include={"posts": True})
    assert bob is not None and [p.title for p in bob.posts] == ["b1"], (
        "children are re-checked against the FK"
    )
    await orm.repo(Writer).delete({"id": rows["ada"].id})
    entry = await orm.repo(Entry).find_first(where={"title": "a2"}, include={"writer": True, "notes": True})
    assert entry is not None and entry.writer is None and len(entry.notes) == 3


async def test_nested_select_reads_only_the_chosen_fields(make_orm: MakeOrm) -> None:
    orm, rows = await seeded(make_orm)
    entries = await orm.repo(Entry).find_many(
        where={"writer_id": rows["ada"].id},
        order_by={"stars": "asc"},
        select={"title": True, "writer": {"select": {"name": True}}, "notes": {"select": {"likes": True}}},
    )
    assert [e.title for e in entries] == ["a1", "a3", "a2"]
    assert entries[0].model_dump() == {"id": entries[0].id, "title": "a1"}
    with pytest.raises(AttributeError):
        _ = entries[0].writer_id
    writer = entries[0].writer
    assert writer is not None and writer.model_dump() == {"id": rows["ada"].id, "name": "ada"}
    assert sorted(n.likes for n in entries[2].notes) == [1, 3, 5]


async def test_int_id_relations_use_the_range_index_of_the_foreign_key(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    await orm.repo(Team).create_many(
        [{"id": 1, "name": "one"}, {"id": 10, "name": "ten"}, {"id": 2, "name": "two"}]
    )
    await orm.repo(Player).create_many([{"id": i, "team_id": [1, 10, 2, 99][i % 4]} for i in range(12)])
    teams = await orm.repo(Team).find_many(include={"players": {"order_by": {"id": "desc"}}})
    assert [t.id for t in teams] == [1, 2, 10]
    assert [[p.id for p in t.players] for t in teams] == [[8, 4, 0], [10, 6, 2], [9, 5, 1]]
    lost = await orm.repo(Player).find_many(where={"team_id": 99}, include={"team": True})
    assert [p.team for p in lost] == [None, None, None]


async def test_bad_selections_fail_before_any_io(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    before = orm.backend.stats.snapshot()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"include": {"writer": {"where": {"name": "ada"}}}}, "to-one relation takes only select or include"),
        ({"include": {"notes": {"limit": 3}}}, "unknown option 'limit'"),
        ({"include": {"notes": {"include": {"author": True}}}}, "Note has no relation 'author'"),
        ({"include": {"notes": {"where": {"likes": {"gt": "many"}}}}}, "Note.likes gt"),
        ({"include": {"title": True}}, "no relation 'title'"),
        ({"include": {"notes": 1}}, "Entry.notes"),
        ({"select": {"notes": {"select": {"body": True}, "include": {"entry": True}}}}, "select or include"),
    ]
    for query, fragment in cases:
        with pytest.raises(QueryError) as info:
            await orm.repo(Entry).find_many(**query)
        assert fragment in str(info.value), (query, str(info.value))
    with pytest.raises(QueryError, match="unknown"):
        await orm.repo(Writer).find_unique({"id": "x"}, include={"unknown": True})
    assert orm.backend.stats.snapshot() == before


async def test_loading_costs_constant_round_trips_per_level(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(SCHEMA)

    async def cost(posts: int) -> tuple[int, int]:
        await raw.flushdb()
        writers = await orm.repo(Writer).create_many([{"name": f"w{i}"} for i in range(max(1, posts // 10))])
        entries = await orm.repo(Entry).create_many(
            [
                {"title": f"t{i}", "writer_id": writers[i % len(writers)].id, "stars": i % 7}
                for i in range(posts)
            ]
        )
        await orm.repo(Note).create_many([{"entry_id": e.id, "body": "x"} for e in entries[::3]])
        await orm.repo(Entry).find_many(take=1)  # the script is cached from here on
        start = orm.backend.stats.round_trips
        loaded = await orm.repo(Entry).find_many(include={"writer": True})
        assert len(loaded) == posts and all(e.writer is not None for e in loaded)
        with_authors = orm.backend.stats.round_trips - start
        start = orm.backend.stats.round_trips
        deep = await orm.repo(Writer).find_many(
            include={
                "posts": {
                    "order_by": {"stars": "desc"},
                    "take": 5,
                    "include": {"notes": True, "writer": True},
                }
            }
        )
        assert sum(len(w.posts) for w in deep) == min(posts, 5 * len(writers))
        return with_authors, orm.backend.stats.round_trips - start

    small, large = await cost(10), await cost(1000)
    assert small == large, "the number of rows does not change the number of round trips"
    assert large[0] <= 3, "posts with their authors: script, records, authors"
    assert large[1] <= 2 + 2 + 2 + 1, (
        "writers, their posts (lookup, records), notes (lookup, records), writers"
    )


def test_relation_and_query_types_are_checked_by_mypy() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "tests/typing_query_checks.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_query_and_relations_example_runs(redis_server: Any, raw: aioredis.Redis) -> None:
    from .test_docs import load_example

    result = await load_example("docs/examples/query_and_relations.py").main(redis_server.url)
    assert result == {
        "popular": [("Notes", "Ada"), ("Engines", "Ada")],
        "uk": {"Ada": ["Notes"], "Alan": ["Machines"]},
        "liked": 3,
        "strategy": "page",
    }


async def test_nested_pages_are_read_per_parent_and_match_paging_every_child(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    """A nested take/skip reads each parent's window of its key index; the answer is what paging
    every child in Python gives, expired children and stale entries included."""
    orm = make_orm(SCHEMA)
    writers = await orm.repo(Writer).create_many([{"name": f"w{i}"} for i in range(5)])
    await orm.repo(Entry).create_many(
        [{"title": f"t{w}-{i}", "writer_id": writer.id, "stars": (i * 5) % 7}
         for w, writer in enumerate(writers) for i in range(w * 4)]
    )  # fmt: skip
    brief = await orm.repo(Entry).create_many(
        [{"title": "brief", "writer_id": writers[3].id, "stars": 6}] * 3, ttl=timedelta(milliseconds=20)
    )
    await anyio.sleep(0.05)
    everything = await orm.repo(Writer).find_many(include={"posts": True})
    for options in (
        {"take": 3},
        {"take": 2, "skip": 3, "order_by": {"stars": "desc"}},
        {"skip": 5},
        {"where": {"stars": {"gte": 2}}, "order_by": [{"stars": "asc"}, {"title": "desc"}], "take": 4},
    ):
        loaded = await orm.repo(Writer).find_many(include={"posts": options})
        plan = orm.repo(Entry).explain(where=options.get("where"), order_by=options.get("order_by"))
        for writer, whole in zip(loaded, everything, strict=True):
            wanted = await orm.repo(Entry).find_many(
                where={"AND": [{"writer_id": writer.id}, options.get("where") or {}]},
                order_by=options.get("order_by"), take=options.get("take"), skip=options.get("skip", 0),
            )  # fmt: skip
            assert [p.id for p in writer.posts] == [p.id for p in wanted], (options, str(plan))
            assert {p.id for p in writer.posts} <= {p.id for p in whole.posts}
            assert not {p.id for p in writer.posts} & {b.id for b in brief}


async def test_nested_pages_cost_nothing_for_the_children_left_out(
    redis_server: Any, raw: aioredis.Redis
) -> None:
    """Server commands (INFO commandstats, a script's own calls included) and round trips of a
    nested take=3 are the same for a writer with 3 posts and for one with 400."""
    client = aioredis.Redis.from_url(redis_server.url)
    orm = create_orm(SCHEMA, client)
    few, many = await orm.repo(Writer).create_many([{"name": "few"}, {"name": "many"}])
    await orm.repo(Entry).create_many(
        [{"title": f"f{i}", "writer_id": few.id} for i in range(3)]
        + [{"title": f"m{i}", "writer_id": many.id} for i in range(400)]
    )

    async def calls() -> int:
        stats = await raw.info("commandstats")
        return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")

    async def cost(writer: Writer) -> tuple[int, int]:
        await orm.repo(Writer).find_many(where={"id": writer.id}, include={"posts": {"take": 3}})
        before, trips = await calls(), orm.backend.stats.round_trips
        found = await orm.repo(Writer).find_many(where={"id": writer.id}, include={"posts": {"take": 3}})
        assert len(found[0].posts) == 3
        return await calls() - before, orm.backend.stats.round_trips - trips

    assert await cost(few) == await cost(many)
    await client.aclose()
