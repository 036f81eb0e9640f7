"""Docs are code: every code block of the README and the docs site is an excerpt of a real file,
those files run here against real servers, the error table lists every error, and the site
builds with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import redis.asyncio as aioredis

import redis_orm_async
from redis_orm_async import OrmError
from redis_orm_async.testing import EmbeddedRedis, LocalRedisCluster, UpstashRestServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_BLOCK = re.compile(r"<!-- example: (\S+) -->\n```(\w+)\n(.*?)```\n<!-- end example -->", re.S)
FENCE = re.compile(r"^```", re.M)


def load_example(relative: str) -> ModuleType:
    """Import an example file as its own module (registered, so Pydantic resolves its names)."""
    path = ROOT / relative
    name = f"docs_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_code_block_is_an_excerpt_of_a_file_the_tests_run() -> None:
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    examples: set[str] = set()
    for document in DOCUMENTS:
        text = document.read_text()
        if document.name == "README.md":
            text = _readme_without_its_commands(text)
        blocks = EXAMPLE_BLOCK.findall(text)
        assert len(FENCE.findall(text)) == 2 * len(blocks), f"{document.name}: a code block is not an example"
        for relative, _language, block in blocks:
            source = (ROOT / relative).read_text()
            assert block.strip() in source, f"{document.name}: block drifted from {relative}"
            examples.add(relative)
    assert len(examples) >= 15
    for relative in sorted(examples):
        assert relative in tests, f"{relative} is shown in the docs but no test runs it"


def _readme_without_its_commands(text: str) -> str:
    """The README opens with its two commands: the demo (tests/test_demo.py runs it) and the test
    command, which .ci/run runs as it is."""
    commands = re.match(r"# [^\n]+\n\n```bash\n(.*?)\n```\n", text, re.S)
    assert commands is not None, "the README opens with its two commands"
    demo, test = commands.group(1).splitlines()
    assert demo.endswith("-m redis_orm_async demo") and test in (ROOT / ".ci" / "run").read_text()
    return text[commands.end() :]


def test_every_page_of_the_site_is_in_its_navigation_and_has_code_but_the_reference() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f": {page.name}" in config, f"{page.name} is not in mkdocs.yml's nav"
        if page.name != "api.md":
            assert EXAMPLE_BLOCK.search(page.read_text()), f"{page.name} shows no example"


def test_the_site_builds_strictly_with_its_api_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    reference = (site / "api" / "index.html").read_text()
    for documented in ("find_many", "reindex", "OrmError", "new_hex_id", "EmbeddedRedis"):
        assert documented in reference
    assert "bookmarks service" in (site / "tutorial" / "index.html").read_text()


def _public_errors() -> list[type[OrmError]]:
    found = [OrmError]
    for name in redis_orm_async.__all__:
        value = getattr(redis_orm_async, name)
        if isinstance(value, type) and issubclass(value, OrmError) and value is not OrmError:
            found.append(value)
    return found


def test_the_error_table_lists_every_error_with_its_code_and_retryable_flag() -> None:
    table = (ROOT / "docs" / "errors.md").read_text()
    rows = {
        match.group(1): (match.group(2), match.group(3))
        for match in re.finditer(r"^\| `(\w+)` \| `(\w+)` \| (yes|no) \|", table, re.M)
    }
    errors = _public_errors()
    assert len(errors) >= 13
    for error in errors:
        assert error.__name__ in rows, f"{error.__name__} is missing from docs/errors.md"
        assert rows[error.__name__] == (error.code, "yes" if error.retryable else "no"), error.__name__
    assert set(rows) == {error.__name__ for error in errors}


async def test_quickstart_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/quickstart.py").main(redis_server.url)
    assert result == {"same": True, "age": 37, "violated": "email", "count": 1}


async def test_upstash_example_runs(upstash_server: UpstashRestServer, raw: object) -> None:
    example = load_example("docs/examples/upstash.py")
    result = await example.main(upstash_server.url, upstash_server.token)
    assert result == {"same": True, "age": 37, "violated": "email", "count": 1, "guard": "script"}


async def test_the_tutorial_app_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/tutorial.py").main(redis_server.url)
    assert result == {
        "duplicate": None,
        "same": True,
        "best": [("Python docs", 3)],
        "py": ["Python docs"],
        "loaded": ["Pydantic", "Redis", "Python docs"],
        "owner": "Ada",
        "sessions_closed": 1,
        "logged_in": False,
        "audit": True,
    }


async def test_the_schema_evolution_example_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/evolution.py").main(redis_server.url)
    assert result == {
        "read": ("Customer 0", "unknown", False),
        "refused": ["i:country"],
        "built": ["i:country", "d:country", "d:vip"],
        "records": 100,
        "unknown": 100,
    }


async def test_the_operations_example_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/operations.py").main(redis_server.url)
    assert result == {"problems": 100, "rebuilt": 400, "ok": True, "t1": 5, "claims": 400}


async def test_the_storage_example_shows_what_is_stored(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/storage.py").main(redis_server.url)
    stored = result["stored"]
    assert (
        set(stored) == {"id", "eml", "age"} and stored["eml"] == "ada@example.com" and stored["age"] == "36"
    )
    assert len(stored["id"]) == 16
    assert result["keys"] == [
        "{user}:ids",
        "{user}:ix",
        "{user}:r:<id>",
        "{user}:st",
        "{user}:u:eml:=ada@example.com",
        "{user}:z:age",
    ]
    assert result["state"] == "eml\t=ada@example.com\t\t\nage\t\t36\t"


async def test_the_errors_example_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/errors.py").main(redis_server.url)
    assert result == {"codes": ["unique_violation:email", "validation_failed", "not_found"]}


async def test_the_cluster_example_runs(redis_cluster: LocalRedisCluster) -> None:
    client = aioredis.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    await client.flushall()
    await client.aclose()
    result = await load_example("docs/examples/cluster.py").main("127.0.0.1", redis_cluster.ports[1])
    assert result == {"paid": 1, "now": 2, "cluster": True}


def test_the_command_line_page_runs(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """docs/examples/cli.sh, as a shell runs it, on a server holding the tutorial's data."""
    import anyio

    anyio.run(lambda: _seed_tutorial(redis_server.url))
    (tmp_path / "tutorial.py").write_text((ROOT / "docs/examples/tutorial.py").read_text())
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_server.url,
    }
    ran = subprocess.run(
        ["bash", str(ROOT / "docs/examples/cli.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stderr == "" and "audit failed" not in ran.stdout
    assert "redis-orm-async, version" in ran.stdout and "Account {acct}: 1 records" in ran.stdout
    assert "would fix: nothing" in ran.stdout and "repair of Bookmark: 3 records rebuilt" in ran.stdout
    assert '"ok": true' in (tmp_path / "audit.json").read_text()


async def _seed_tutorial(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()
    tutorial = load_example("docs/examples/tutorial.py")
    await tutorial.main(url)


def test_the_readme_points_at_the_site() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "mkdocs serve" in readme and "docs/tutorial.md" in readme


def test_the_explain_output_shown_in_the_docs_is_what_explain_prints() -> None:
    example = load_example("docs/examples/query_and_relations.py")
    orm = redis_orm_async.create_orm(
        redis_orm_async.Schema([example.Author, example.Post]), aioredis.Redis()
    )  # explain does no I/O: the client never connects
    plan = orm.repo(example.Post).explain(where={"likes": {"gte": 10}}, order_by={"likes": "desc"}, take=2)
    assert str(plan) == (ROOT / "docs/examples/explain.txt").read_text().rstrip("\n")


async def test_typed_queries_example_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/typed_queries.py").main(redis_server.url)
    assert result == {
        "adults": ["di@example.com", "ada@example.com"],
        "flagged": 2,
        "others": ["bob@example.com", "di@example.com"],
        "contacts": [("ada@example.com", 36), ("cy@example.com", 52), ("di@example.com", 41)],
        "window": [41, 52],
        "vip": "di@example.com",
    }
