"""The ``redis-orm-async`` command line, end to end: a real process against real servers holding
thousands of records; exit codes, ``--json``, progress bars on a terminal (a pty), Upstash by its
environment variables (the token never printed), a cluster found by itself, ``reindex`` of a new
index and a new unique under concurrent writers, and ``repair`` after keys were deleted by hand."""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import pytest
import redis.asyncio as aioredis

from redis_orm_async import Orm, create_orm
from redis_orm_async._engine.built import RESUME_FIELD
from redis_orm_async._engine.progress import Progress
from redis_orm_async.testing import EmbeddedRedis, LocalRedisCluster, UpstashRestServer

ROOT = Path(__file__).resolve().parent.parent
RECORDS = 3000

APP_V1 = """
from datetime import timedelta
from redis_orm_async import Field, Model, Schema

class Account(Model, key_prefix="acct"):
    email: str = Field(unique=True)
    handle: str
    plan: str = "free"
    age: int = 0

class Token(Model, key_prefix="tok", ttl=timedelta(minutes=10)):
    code: str = Field(unique=True)

schema = Schema([Account, Token])
"""

APP_V2 = """
from datetime import timedelta
from redis_orm_async import Field, Model, Schema

class Account(Model, key_prefix="acct"):
    email: str = Field(unique=True)
    handle: str = Field(unique=True)
    plan: str = Field("free", index=True)
    age: int = Field(0, index=True)

class Token(Model, key_prefix="tok", ttl=timedelta(minutes=10)):
    code: str = Field(unique=True)

schema = Schema([Account, Token])
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType, ModuleType]:
    """Two versions of one app's models, as files the command line imports by path."""
    folder = tmp_path_factory.mktemp("app")
    modules = []
    for name, source in (("app_v1", APP_V1), ("app_v2", APP_V2)):
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return folder, modules[0], modules[1]


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "UPSTASH_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def run_cli(folder: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    """The command line as a user runs it, in the app's folder, stderr on a pipe."""
    done = subprocess.run(
        [sys.executable, "-m", "redis_orm_async", *args],
        cwd=folder,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def run_cli_on_tty(folder: Path, *args: str) -> Ran:
    """The same, with stderr on a pseudo-terminal, as in an interactive shell."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "redis_orm_async", *args],
        cwd=folder,
        env=_environment(None),
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        screen += chunk
    out, _ = process.communicate(timeout=300)
    os.close(leader)
    return Ran(process.returncode, out, screen.decode(errors="replace"))


async def cli(folder: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    return await anyio.to_thread.run_sync(lambda: run_cli(folder, *args, env=env))


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A server of this module's own, so that its thousands of records disturb no other test."""
    with EmbeddedRedis() as private:
        yield private


async def seed(orm: Orm, app: ModuleType, count: int = RECORDS, duplicate_handles: bool = False) -> None:
    accounts = orm.repo(app.Account)
    batch = [
        {
            "email": f"user{n}@example.com",
            "handle": f"h{n % 7}" if duplicate_handles and n < 20 else f"h{n}",
            "plan": ("free", "pro", "team")[n % 3],
            "age": n % 90,
        }
        for n in range(count)
    ]
    await accounts.create_many(batch)
    await orm.repo(app.Token).create_many([{"code": f"c{n}"} for n in range(50)])


async def test_version_and_help(apps: tuple[Path, ModuleType, ModuleType]) -> None:
    folder = apps[0]
    version = await cli(folder, "--version")
    assert version.code == 0 and version.out.strip() == "redis-orm-async, version 0.1.0"
    helped = await cli(folder, "--help")
    assert helped.code == 0
    for command in ("inspect", "audit", "repair", "reindex", "sweep", "demo"):
        assert command in helped.out


async def test_usage_errors_exit_2_and_say_what_is_wrong(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder = apps[0]
    cases = [
        (("audit", "app_v1"), "expected MODULE:ATTRIBUTE"),
        (("audit", "nowhere:schema", "--url", server.url), "could not import module 'nowhere'"),
        (("audit", "app_v1:nothing", "--url", server.url), "has no attribute 'nothing'"),
        (("audit", "app_v1:Account", "--url", server.url), "not a redis_orm_async Schema"),
        (("audit", "app_v1:schema"), "no server: pass --url, or set REDIS_URL"),
        (("reindex", "app_v1:schema", "Nope", "--url", server.url), "no model named Nope"),
        (("audit", "app_v1:schema", "--url", "ftp://x"), "the URL scheme must be one of"),
    ]
    for args, message in cases:
        ran = await cli(folder, *args)
        assert ran.code == 2, (args, ran)
        assert message in ran.err, (args, ran.err)


async def test_an_unreachable_server_exits_3_in_text_and_in_json(
    apps: tuple[Path, ModuleType, ModuleType],
) -> None:
    with EmbeddedRedis() as gone:
        url = gone.url
    ran = await cli(apps[0], "audit", "app_v1:schema", "--json", env={"REDIS_URL": url})
    assert ran.code == 3
    error = ran.json()
    assert error["ok"] is False and error["error"]["code"] == "backend_unavailable"
    assert error["error"]["retryable"] is True
    text = await cli(apps[0], "inspect", "app_v1:schema", "--url", url)
    assert text.code == 3 and "unavailable" in text.err and text.out == ""


async def test_inspect_counts_a_live_model_and_names_the_server(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, _ = apps
    client = aioredis.Redis.from_url(server.url)
    orm = create_orm(v1.schema, client)
    await seed(orm, v1)
    expired = await orm.repo(v1.Token).create(data={"code": "gone"}, ttl=None)
    await orm.repo(v1.Token).touch(where={"id": expired.id}, ttl=anyio_ms(1))
    await anyio.sleep(0.05)
    ran = await cli(folder, "inspect", "app_v1:schema", "--url", server.url, "--json")
    assert ran.code == 0, ran
    found = ran.json()
    assert found["server"] == {
        "backend": "redis",
        "kind": "redis",
        "version": found["server"]["version"],
        "maxmemory_policy": "noeviction",
    }
    assert found["server"]["version"].startswith("6.2")
    account, token = found["models"]
    assert account["model"] == "Account" and account["prefix"] == "{acct}"
    assert account["records"] == account["listed"] == RECORDS
    assert account["claims"] == RECORDS and account["index_keys"] == 1  # the id ZSET
    assert account["keys"] == RECORDS * 2 + 3  # records, claims; ids, state lines, built marker
    assert account["memory"] > RECORDS * 50
    assert account["indexes"] == {"u:email": True}, "created on an empty model: built"
    assert token["records"] == 50 and token["listed"] == 51 and token["expiring"] == 51
    assert token["expiry_backlog"] == 1, "the expired token awaits the sweep"
    text = await cli(folder, "inspect", "app_v1:schema", "--url", server.url, "--model", "Token")
    assert text.code == 0
    assert "server: redis 6.2" in text.out and "maxmemory-policy noeviction" in text.out
    assert "Token {tok}: 50 records (51 listed)" in text.out and "Account" not in text.out
    await client.aclose()


def anyio_ms(milliseconds: int) -> Any:
    from datetime import timedelta

    return timedelta(milliseconds=milliseconds)


async def test_progress_bars_are_drawn_on_a_terminal_and_never_on_a_pipe(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, _ = apps
    client = aioredis.Redis.from_url(server.url)
    await seed(create_orm(v1.schema, client), v1)
    on_tty = await anyio.to_thread.run_sync(
        lambda: run_cli_on_tty(folder, "audit", "app_v1:schema", "--url", server.url)
    )
    assert on_tty.code == 0, on_tty
    assert f"audit Account: records [{'#' * 30}] {RECORDS}/{RECORDS} 100%" in on_tty.err
    assert "audit Account: index keys [" in on_tty.err and "\r" in on_tty.err
    assert "audit of Account: 3000 records, 0 problems" in on_tty.out
    piped = await cli(folder, "audit", "app_v1:schema", "--url", server.url)
    assert piped.code == 0 and piped.err == ""
    for command in ("inspect", "sweep"):
        drawn = await anyio.to_thread.run_sync(
            lambda command=command: run_cli_on_tty(folder, command, "app_v1:schema", "--url", server.url)
        )
        assert drawn.code == 0 and f"{command} Account" in drawn.err
    await client.aclose()


async def test_repair_after_keys_were_deleted_by_hand(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, _, v2 = apps
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    orm = create_orm(v2.schema, client)
    await seed(orm, v2)
    keys = orm.schema.meta(v2.Account).keys
    await client.delete(keys.equality("plan", "pro"), keys.range("age"), keys.states())
    claims = [key async for key in client.scan_iter(match=keys.unique_pattern("handle"), count=1000)]
    await client.delete(*claims[:100])
    url = ["--url", server.url]
    audited = await cli(folder, "audit", "app_v2:schema", *url, "--json")
    assert audited.code == 1
    account = audited.json()["models"][0]
    assert account["ok"] is False and account["records"] == RECORDS
    kinds = {problem["kind"] for problem in account["problems"]}
    assert kinds == {"missing", "state"}
    dry = await cli(folder, "repair", "app_v2:schema", *url, "--dry-run", "--json")
    assert dry.code == 1
    would = dry.json()["models"][0]["would_fix"]
    assert would["missing"] == RECORDS // 3 + RECORDS + 100 and would["state"] == RECORDS
    assert (await cli(folder, "audit", "app_v2:schema", *url)).code == 1, "a dry run writes nothing"
    repaired = await cli(folder, "repair", "app_v2:schema", *url, "--batch", "700")
    assert repaired.code == 0, repaired
    assert f"repair of Account: {RECORDS} records rebuilt" in repaired.out
    clean = await cli(folder, "audit", "app_v2:schema", *url)
    assert clean.code == 0 and "0 problems" in clean.out
    pros = await orm.repo(v2.Account).find_many(where={"plan": "pro", "age": {"lt": 10}})
    assert len(pros) == sum(1 for n in range(RECORDS) if n % 3 == 1 and n % 90 < 10)
    await client.aclose()


async def test_reindex_backfills_a_new_index_and_a_new_unique_while_writers_run(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, v2 = apps
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    old = create_orm(v1.schema, client)
    await seed(old, v1)
    new = create_orm(v2.schema, client)
    accounts = new.repo(v2.Account)
    before = await cli(folder, "inspect", "app_v2:schema", "--url", server.url, "--json")
    assert before.code == 1, "indexes that are not built are something to act on"
    assert before.json()["models"][0]["indexes"] == {
        "i:plan": False,
        "z:age": False,
        "u:email": True,
        "u:handle": False,
    }
    written: list[str] = []
    stop = anyio.Event()

    async def writer(lane: int) -> None:
        n = 0
        while not stop.is_set():
            made = await accounts.create(
                data={"email": f"new{lane}-{n}@x.io", "handle": f"new{lane}-{n}", "plan": "pro", "age": 5}
            )
            written.append(made.id)
            await accounts.update(where={"email": f"user{lane * 100 + n}@example.com"}, data={"plan": "team"})
            n += 1

    ran: list[Ran] = []
    async with anyio.create_task_group() as group:
        for lane in range(3):
            group.start_soon(writer, lane)
        ran.append(
            await cli(folder, "reindex", "app_v2:schema", "Account", "--url", server.url, "--batch", "200")
        )
        stop.set()
    result = ran[0]
    assert result.code == 0, result
    rebuilt = int(result.out.split("reindex of Account: ")[1].split(" records")[0])
    assert RECORDS <= rebuilt <= RECORDS + len(written), "old records, and new ones the walk reached"
    assert "built equality index on plan, range index on age, unique handle" in result.out
    audit = await new.audit(v2.Account)
    assert audit.ok, str(audit)
    everyone = await accounts.find_many()
    assert len(everyone) == RECORDS + len(written)
    for plan in ("free", "pro", "team"):
        expected = sorted(a.id for a in everyone if a.plan == plan and a.age < 30)
        found = await accounts.find_many(where={"plan": plan, "age": {"lt": 30}})
        assert sorted(a.id for a in found) == expected, plan
    assert (await accounts.find_unique(where={"handle": "h1234"})) is not None, "old records are claimed"
    with pytest.raises(Exception, match="handle"):
        await accounts.create(data={"email": "z@x.io", "handle": "h17"})
    after = await cli(folder, "inspect", "app_v2:schema", "--url", server.url, "--json")
    assert after.code == 0 and all(after.json()["models"][0]["indexes"].values())
    again = await cli(folder, "reindex", "app_v2:schema", "Account", "--url", server.url, "--json")
    assert again.code == 0 and again.json()["indexes"] == [] and again.json()["records"] == 0
    await client.aclose()


async def test_reindex_refuses_a_new_unique_that_existing_records_violate(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, v2 = apps
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    await seed(create_orm(v1.schema, client), v1, duplicate_handles=True)
    ran = await cli(folder, "reindex", "app_v2:schema", "Account", "--url", server.url, "--json")
    assert ran.code == 1
    report = ran.json()
    assert report["ok"] is False and report["refused"] is True and report["records"] == 0
    meta = v2.schema.meta(v2.Account)
    ids = {
        n: account.id
        for n, account in enumerate(await create_orm(v1.schema, client).repo(v1.Account).find_many())
    }
    by_handle: dict[str, list[str]] = {}
    for n in range(20):
        by_handle.setdefault(f"h{n % 7}", []).append(ids[n])
    expected = sorted(
        [{"constraint": "handle", "ids": sorted(group)} for group in by_handle.values()], key=str
    )
    assert sorted(report["conflicts"], key=str) == expected
    assert [key async for key in client.scan_iter(match=meta.keys.unique_pattern("handle"))] == []
    assert await client.hget(meta.keys.built(), "i:plan") is None, "nothing was written"
    text = await cli(folder, "reindex", "app_v2:schema", "Account", "--url", server.url)
    assert text.code == 1 and "refused" in text.out and ids[0] in text.out
    await client.aclose()


class Interrupt(Exception):
    pass


class StopAfter(Progress):
    """Progress that interrupts a walk after some records, as a killed process would."""

    def __init__(self, records: int) -> None:
        self.left = records
        self.label = ""

    def start(self, label: str, total: int | None = None) -> None:
        self.label = label

    def advance(self, count: int = 1) -> None:
        if self.label.endswith("records"):
            self.left -= count
            if self.left <= 0:
                raise Interrupt


async def test_an_interrupted_reindex_resumes_where_it_stopped(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, v2 = apps
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    await seed(create_orm(v1.schema, client), v1)
    new = create_orm(v2.schema, client)
    with pytest.raises(Interrupt):
        await new.reindex(v2.Account, batch=250, progress=StopAfter(1000))
    meta = new.schema.meta(v2.Account)
    saved = await client.hget(meta.keys.built(), RESUME_FIELD)
    assert saved is not None and saved.startswith("i:plan,z:age,u:handle,d:plan,d:age\n")
    ran = await cli(folder, "reindex", "app_v2:schema", "Account", "--url", server.url, "--json")
    report = ran.json()
    assert ran.code == 0 and report["resumed_after"] == saved.split("\n")[1]
    assert report["records"] == RECORDS - 1000
    assert await client.hget(meta.keys.built(), RESUME_FIELD) is None
    assert (await new.audit(v2.Account)).ok
    await client.aclose()


async def test_sweep_removes_expired_leftovers_and_reports_them(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, _ = apps
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    orm = create_orm(v1.schema, client)
    await orm.repo(v1.Token).create_many([{"code": f"x{n}"} for n in range(1200)], ttl=anyio_ms(30))
    await anyio.sleep(0.1)
    ran = await cli(folder, "sweep", "app_v1:schema", "--url", server.url, "--json")
    swept = ran.json()["swept"]
    assert ran.code == 0 and swept["Account"] == 0
    assert 1200 - 3 * 8 <= swept["Token"] <= 1200, "all but the few each write sweeps as it goes"
    assert await client.zcard(orm.schema.meta(v1.Token).keys.ids()) == 0
    await client.aclose()


async def test_upstash_by_its_environment_variables_never_prints_the_token(
    apps: tuple[Path, ModuleType, ModuleType], server: EmbeddedRedis
) -> None:
    folder, v1, _ = apps
    token = secrets.token_urlsafe(24)
    client = aioredis.Redis.from_url(server.url)
    await seed(create_orm(v1.schema, client), v1, count=500)
    with UpstashRestServer(server.url, token=token) as rest:
        env = {"UPSTASH_REDIS_REST_URL": rest.url, "UPSTASH_REDIS_REST_TOKEN": token}
        for command in ("inspect", "audit"):
            ran = await cli(folder, command, "app_v1:schema", "--json", env=env)
            assert ran.code == 0, ran
            assert token not in ran.out + ran.err
        assert ran.json()["models"][0]["records"] == 500
        wrong = await cli(
            folder, "audit", "app_v1:schema", env={**env, "UPSTASH_REDIS_REST_TOKEN": "nope-" + token}
        )
        assert wrong.code == 3 and "refused the token" in wrong.err and token not in wrong.err + wrong.out
        missing = await cli(folder, "audit", "app_v1:schema", env={"UPSTASH_REDIS_REST_URL": rest.url})
        assert missing.code == 2 and "UPSTASH_REDIS_REST_TOKEN" in missing.err
    await client.aclose()


async def test_a_cluster_is_recognised_from_any_node_url(apps: tuple[Path, ModuleType, ModuleType]) -> None:
    folder, v1, _ = apps
    with LocalRedisCluster() as cluster:
        client = aioredis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        await seed(create_orm(v1.schema, client), v1, count=400)
        url = f"redis://127.0.0.1:{cluster.ports[-1]}"
        ran = await cli(folder, "inspect", "app_v1:schema", "--url", url, "--json")
        assert ran.code == 0, ran
        assert ran.json()["server"]["backend"] == "redis-cluster"
        assert ran.json()["models"][0]["records"] == 400
        audited = await cli(folder, "audit", "app_v1:schema", "--url", url)
        assert audited.code == 0 and "audit of Account: 400 records, 0 problems" in audited.out
        await client.aclose()


async def test_a_password_in_the_url_is_never_printed(apps: tuple[Path, ModuleType, ModuleType]) -> None:
    secret = secrets.token_hex(12)
    with EmbeddedRedis(args=["--requirepass", secret]) as locked:
        wrong = f"redis://:not-{secret}@127.0.0.1:{locked.port}/0"
        ran = await cli(apps[0], "audit", "app_v1:schema", "--url", wrong)
        assert ran.code == 3 and "refused the credentials" in ran.err
        assert secret not in ran.err + ran.out and ":***@" in ran.err
        right = await cli(
            apps[0],
            "audit",
            "app_v1:schema",
            env={"REDIS_URL": f"redis://:{secret}@127.0.0.1:{locked.port}/0"},
        )
        assert right.code == 0 and secret not in right.out + right.err
