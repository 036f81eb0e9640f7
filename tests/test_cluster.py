"""The ORM on a real local Redis Cluster (three primaries) through ``redis.asyncio.RedisCluster``."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import anyio
import pytest
import redis
import redis.asyncio as aioredis

from redis_orm_async import (
    BackendUnavailableError,
    Field,
    Model,
    Orm,
    QueryError,
    Schema,
    UniqueConstraintError,
    create_orm,
    create_orm_from_runtime,
)
from redis_orm_async._backends.cluster import ClusterBackend, has_hash_tag, routing_key
from redis_orm_async.testing import LocalRedisCluster


class Member(Model, key_prefix="cl_user"):
    email: str = Field(unique=True)
    n: int = Field(0, index=True)
    team: str | None = Field(None, index=True)
    name: str | None = None


class Team(Model, key_prefix="cl_team"):
    name: str = Field(unique=True)
    size: int = Field(0, index=True)


class Pass(Model, key_prefix="cl_a", ttl=timedelta(milliseconds=150)):
    code: str = Field(unique=True)
    owner: str = Field(index=True)


class Mover(Model, key_prefix="cl_moving"):
    """The one model whose slot a test reshards to another node, so the others stay put."""

    code: str = Field(unique=True)


SCHEMA = Schema([Member, Team, Pass, Mover])


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster(masters=3) as running:
        yield running


@pytest.fixture
async def client(cluster: LocalRedisCluster) -> AsyncIterator[aioredis.RedisCluster]:
    """A cluster client on emptied nodes."""
    for port in cluster.ports:
        async with aioredis.Redis(host="127.0.0.1", port=port) as node:
            await node.flushall()
    cluster_client = aioredis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    yield cluster_client
    await cluster_client.aclose()


@pytest.fixture
def orm(client: aioredis.RedisCluster) -> Orm:
    return create_orm(SCHEMA, client, max_attempts=500)


def test_routing_keys_are_found_per_command() -> None:
    assert routing_key(("HGETALL", "{cl_user}:r:1")) == "{cl_user}:r:1"
    assert routing_key(("MGET", "{a}:u:x", "{a}:u:y")) == "{a}:u:x"
    assert routing_key(("EVALSHA", "f00", 2, "{a}:ids", "{a}:exp", "arg")) == "{a}:ids"
    assert routing_key(("EVAL", "return 1", 0)) is None
    assert routing_key(("EVAL", "return 1", "x", "k")) is None
    assert routing_key(("SCAN", "0", "MATCH", "{a}:r:*", "COUNT", 10)) == "{a}:r:*"
    assert routing_key(("SCAN", "0")) is None
    assert routing_key(("TIME",)) is None and routing_key(("PING",)) is None
    assert routing_key(("OBJECT", "ENCODING", "{a}:r:1")) == "{a}:r:1"
    assert has_hash_tag("{a}:r:*") and not has_hash_tag("a:r:*") and not has_hash_tag("{}:r")


async def test_the_runtime_detects_a_cluster_and_reports_it(client: aioredis.RedisCluster) -> None:
    orm = await create_orm_from_runtime(schema=SCHEMA, client=client)
    assert isinstance(orm.backend, ClusterBackend)
    assert orm.capabilities.backend_kind == "redis-cluster" and orm.capabilities.supports_cluster
    assert orm.capabilities.optimistic_guard == "script" and not orm.capabilities.supports_transactions
    assert orm.backend.features.server_version >= (6, 2)


async def test_crud_on_a_cluster(orm: Orm) -> None:
    members = orm.repo(Member)
    ada = await members.create(data={"email": "ada@x.io", "name": "Ada"})
    assert await members.find_unique(where={"id": ada.id}) == ada
    assert await members.find_unique(where={"email": "ada@x.io"}) == ada
    moved = await members.update(where={"email": "ada@x.io"}, data={"email": "ada@y.io", "team": "t"})
    assert moved is not None and moved.email == "ada@y.io"
    assert await members.find_unique(where={"email": "ada@x.io"}) is None
    created = await members.upsert(where={"email": "bob@x.io"}, create={"n": 1}, update={"n": 9})
    updated = await members.upsert(where={"email": "bob@x.io"}, create={"n": 1}, update={"n": 9})
    assert created.n == 1 and updated.id == created.id and updated.n == 9
    assert await members.count() == 2
    assert await members.delete(where={"id": ada.id}) == moved
    assert await members.delete(where={"id": ada.id}) is None
    assert await members.count() == 1
    assert (await orm.audit(Member)).ok


async def test_a_unique_violation_loses_nothing(orm: Orm) -> None:
    members = orm.repo(Member)
    first = await members.create(data={"email": "taken@x.io", "n": 1})
    with pytest.raises(UniqueConstraintError) as caught:
        await members.create(data={"email": "taken@x.io", "n": 2})
    assert caught.value.fields == ("email",)
    assert await members.find_unique(where={"email": "taken@x.io"}) == first
    assert await members.count() == 1 and (await orm.audit(Member)).ok


async def test_bulk_writes_by_ids(orm: Orm) -> None:
    members = orm.repo(Member)
    created = await members.create_many([{"email": f"{i}@x.io", "n": i} for i in range(40)])
    ids = [m.id for m in created[:15]]
    assert await members.update_many(where={"id": {"in": [*ids, "missing"]}}, data={"team": "x"}) == 15
    assert await members.delete_many(where={"id": {"in": ids[:5]}}) == 5
    assert await members.count() == 35
    report = await orm.audit(Member)
    assert report.ok and report.records == 35, str(report)


async def test_expiring_records_and_the_sweep(orm: Orm) -> None:
    passes = orm.repo(Pass)
    for n in range(10):
        await passes.create(data={"code": f"c{n}", "owner": f"o{n % 2}"})
    keeper = await passes.create(data={"code": "keep", "owner": "o0"}, ttl=timedelta(seconds=30))
    await anyio.sleep(0.3)
    assert await passes.count() == 1, "count is exact before any sweep"
    assert await passes.find_unique(where={"code": "c1"}) is None
    assert await orm.sweep(Pass) == 10
    report = await orm.audit(Pass)
    assert report.ok and report.records == 1, str(report)
    assert await passes.find_unique(where={"code": "keep"}) == keeper


async def test_a_counter_increment_runs_server_side(orm: Orm) -> None:
    members = orm.repo(Member)
    member = await members.create(data={"email": "count@x.io"})

    async def bump() -> None:
        for _ in range(25):
            await members.update(where={"id": member.id}, data={"n": {"increment": 1}})

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(bump)
    found = await members.find_unique(where={"id": member.id})
    assert found is not None and found.n == 200
    assert (await orm.audit(Member)).ok


async def test_a_storm_of_random_writes_leaves_a_clean_audit(orm: Orm) -> None:
    members, teams = orm.repo(Member), orm.repo(Team)
    rng = random.Random(6)
    emails = [f"e{i}@x.io" for i in range(12)]
    ids = [f"m{i}" for i in range(20)]

    async def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(63):
            action = local.choice(["upsert", "update", "delete", "increment", "team"])
            record_id = local.choice(ids)
            with contextlib.suppress(UniqueConstraintError):
                if action == "upsert":
                    data = {"email": local.choice(emails), "n": local.randint(0, 9)}
                    await members.upsert(where={"id": record_id}, create=data, update=data)
                elif action == "update":
                    await members.update(where={"id": record_id}, data={"team": local.choice("abc")})
                elif action == "delete":
                    await members.delete(where={"id": record_id})
                elif action == "increment":
                    await members.update(where={"id": record_id}, data={"n": {"increment": 1}})
                else:
                    name = local.choice(["red", "blue", "green"])
                    bump = {"size": {"increment": 1}}
                    await teams.upsert(where={"name": name}, create={"size": 1}, update=bump)

    async with anyio.create_task_group() as group:
        for task in range(16):
            group.start_soon(writer, rng.randrange(2**32) + task)
    for model in (Member, Team):
        report = await orm.audit(model)
        assert report.ok, str(report)
    stored = [await members.find_unique(where={"email": email}) for email in emails]
    holders = [m.id for m in stored if m is not None]
    assert len(holders) == len(set(holders)) == await members.count()


async def test_models_of_different_prefixes_live_on_different_nodes(
    orm: Orm, client: aioredis.RedisCluster
) -> None:
    await client.initialize()
    member_node = client.get_node_from_key(orm.schema.meta(Member).keys.ids())
    team_node = client.get_node_from_key(orm.schema.meta(Team).keys.ids())
    assert member_node is not None and team_node is not None
    assert member_node.name != team_node.name, "pick prefixes whose slots two different nodes own"
    member = await orm.repo(Member).create(data={"email": "m@x.io", "team": "red"})
    team = await orm.repo(Team).create(data={"name": "red", "size": 3})
    backend = orm.backend
    assert isinstance(backend, ClusterBackend)
    before = (backend.stats.round_trips, backend.cluster_stats.node_round_trips)
    replies = await backend.pipeline(
        [
            ("HGET", orm.schema.meta(Member).keys.record(member.id), "email"),
            ("HGET", orm.schema.meta(Team).keys.record(team.id), "name"),
            ("TIME",),
            ("HGET", orm.schema.meta(Member).keys.record(member.id), "team"),
        ]
    )
    assert replies[0] == "m@x.io" and replies[1] == "red" and replies[3] == "red"
    assert len(replies[2]) == 2
    after = (backend.stats.round_trips, backend.cluster_stats.node_round_trips)
    assert after[0] - before[0] == 1, "two nodes read concurrently: one round trip of latency"
    assert after[1] - before[1] == 2, "one exchange per node"


async def test_a_unit_of_work_across_slots_is_refused_before_anything_is_written(orm: Orm) -> None:
    members, teams = orm.repo(Member), orm.repo(Team)
    with pytest.raises(QueryError, match="one model's keys") as caught:
        async with orm.transaction() as tx:
            tx.repo(Member).create(data={"email": "a@x.io"})
            tx.repo(Team).create(data={"name": "a"})
    assert len(caught.value.meta["slots"]) == 2
    assert await members.count() == 0 and await teams.count() == 0
    async with orm.transaction() as tx:
        tx.repo(Member).create(data={"email": "a@x.io"})
        tx.repo(Member).create(data={"email": "b@x.io"})
    assert await members.count() == 2
    member_key = orm.schema.meta(Member).keys.record("x")
    team_key = orm.schema.meta(Team).keys.record("x")
    with pytest.raises(QueryError, match="one model's keys"):
        await orm.backend.atomic([("SET", member_key, 1), ("SET", team_key, 1)])
    assert await orm.backend.pipeline([("EXISTS", member_key), ("EXISTS", team_key)]) == [0, 0]


async def test_a_scan_without_a_hash_tag_is_refused(orm: Orm) -> None:
    with pytest.raises(QueryError, match="hash tag"):
        await orm.backend.execute(("SCAN", "0", "MATCH", "cl_user:*"))
    with pytest.raises(QueryError, match="hash tag"):
        await orm.backend.execute(("SCAN", "0"))
    assert await orm.backend.execute(("SCAN", "0", "MATCH", "{cl_user}:*")) == ["0", []]


def _node_ids(cluster: LocalRedisCluster) -> dict[int, str]:
    ids = {}
    for port in cluster.ports:
        with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
            ids[port] = node.execute_command("CLUSTER", "MYID")
    return ids


def _owner(cluster: LocalRedisCluster, slot: int) -> int:
    with redis.Redis(host="127.0.0.1", port=cluster.ports[0], decode_responses=True) as node:
        for first, last, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return int(primary[1])
    raise AssertionError(f"slot {slot} is not served")


def _start_moving(cluster: LocalRedisCluster, slot: int, source: int, target: int) -> None:
    """Mark the slot migrating and move its keys, as ``redis-cli --cluster reshard`` does."""
    ids = _node_ids(cluster)
    with (
        redis.Redis(host="127.0.0.1", port=source, decode_responses=True) as src,
        redis.Redis(host="127.0.0.1", port=target, decode_responses=True) as dst,
    ):
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)


def _finish_moving(cluster: LocalRedisCluster, slot: int, target: int) -> None:
    owner = _node_ids(cluster)[target]
    for port in cluster.ports:
        with redis.Redis(host="127.0.0.1", port=port) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)


async def test_a_resharded_slot_is_followed_after_a_redirect(
    orm: Orm, client: aioredis.RedisCluster, cluster: LocalRedisCluster
) -> None:
    movers = orm.repo(Mover)
    backend = orm.backend
    assert isinstance(backend, ClusterBackend)
    first = await movers.create(data={"code": "before"})
    slot = client.keyslot(orm.schema.meta(Mover).keys.ids())
    source = _owner(cluster, slot)
    target = next(port for port in cluster.ports if port != source)

    _start_moving(cluster, slot, source, target)
    _finish_moving(cluster, slot, target)
    exchanges = backend.cluster_stats.node_round_trips
    assert await movers.find_unique(where={"id": first.id}) == first
    assert backend.cluster_stats.node_round_trips - exchanges == 2, "MOVED, refresh, and one retry"
    second = await movers.create(data={"code": "after"})
    assert await movers.find_unique(where={"code": "after"}) == second

    _start_moving(cluster, slot, target, source)
    with pytest.raises(BackendUnavailableError) as caught:
        await movers.find_unique(where={"code": "before"})  # ASK while the slot is half-moved
    assert caught.value.retryable
    _finish_moving(cluster, slot, source)
    assert await movers.find_unique(where={"code": "before"}) == first
    assert await movers.count() == 2 and (await orm.audit(Mover)).ok


async def test_a_cluster_that_went_away_is_unavailable_and_retryable() -> None:
    with LocalRedisCluster(masters=1) as small:
        client = aioredis.RedisCluster(host="127.0.0.1", port=small.ports[0], socket_connect_timeout=1)
        orm = create_orm(SCHEMA, client)
        await orm.repo(Member).create(data={"email": "a@x.io"})
        small.stop()
        with pytest.raises(BackendUnavailableError) as caught:
            await orm.repo(Member).create(data={"email": "b@x.io"})
        assert caught.value.retryable and caught.value.backend_kind == "redis-cluster"
        with pytest.raises(BackendUnavailableError):
            await orm.repo(Member).count()
        await client.aclose()
