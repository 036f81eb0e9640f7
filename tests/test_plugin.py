"""The pytest plugin our users get: run as a user's test suite would run it, in a pytest of its
own, under anyio and under pytest-asyncio (strict and auto), with warnings as errors."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

import redis_orm_async.testing.pytest_plugin as plugin

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "redis_orm_async.testing.pytest_plugin"

USER_TESTS = """
import pytest
import redis.asyncio as aioredis

from redis_orm_async import Field, Model, Schema

class Note(Model):
    text: str = Field(index=True)

SCHEMA = Schema([Note])

@pytest.mark.parametrize("backend", ["redis", "upstash"])
async def test_writes_on_a_backend(orm_factory, backend):
    orm = orm_factory(SCHEMA, backend=backend)
    await orm.repo(Note).create(data={"text": "kept?"})
    assert [n.text for n in await orm.repo(Note).find_many(where={"text": "kept?"})] == ["kept?"]

async def test_every_test_starts_on_an_empty_server(orm_factory, redis_orm_url):
    orm = orm_factory(SCHEMA)
    assert await orm.repo(Note).count() == 0
    client = aioredis.Redis.from_url(redis_orm_url)
    assert await client.dbsize() == 0
    await client.aclose()

async def test_one_test_has_as_many_orms_as_it_likes(orm_factory, redis_orm_server):
    first, second = orm_factory(SCHEMA), orm_factory(SCHEMA, eviction="refuse")
    await first.repo(Note).create(data={"text": "shared"})
    assert await second.repo(Note).count() == 1
    await second.connect()
    assert second.capabilities.server_kind == redis_orm_server.server
"""

CLUSTER_TEST = """
from redis_orm_async import Field, Model, Schema

class Item(Model):
    name: str = Field(unique=True)

async def test_the_local_cluster(orm_factory, redis_orm_cluster):
    orm = orm_factory(Schema([Item]), backend="cluster")
    await orm.repo(Item).create(data={"name": "one"})
    await orm.connect()
    assert orm.capabilities.supports_cluster and len(redis_orm_cluster.ports) == 3

async def test_the_cluster_is_emptied_too(orm_factory):
    orm = orm_factory(Schema([Item]), backend="cluster")
    assert await orm.repo(Item).count() == 0
"""

ANYIO_CONFTEST = """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


@pytest.fixture(autouse=True)
def this_checkout_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner pytest imports the package from this checkout, wherever it runs."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def configure(pytester: pytest.Pytester, ini: str, conftest: str = "") -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n" + ini)
    if conftest:
        pytester.makeconftest(conftest)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A pytest of its own; ``-p`` loads the plugin as its entry point does once installed (and
    pytest-asyncio, a dev dependency, loads itself unless ``-p no:asyncio`` keeps it out)."""
    return pytester.runpytest_subprocess("-p", PLUGIN, "-p", "no:cacheprovider", *args, timeout=300)


def test_under_anyio_with_pytest_asyncio_kept_out(pytester: pytest.Pytester) -> None:
    configure(pytester, "anyio_mode = auto\n", ANYIO_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(passed=4)


def test_under_pytest_asyncio_in_strict_mode(pytester: pytest.Pytester) -> None:
    configure(pytester, "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user="import pytest\npytestmark = pytest.mark.asyncio\n" + USER_TESTS)
    result = run(pytester)
    result.assert_outcomes(passed=4)


def test_under_pytest_asyncio_in_auto_mode_on_valkey(pytester: pytest.Pytester) -> None:
    configure(pytester, "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=USER_TESTS)
    result = run(pytester, "--redis-orm-server=valkey")
    result.assert_outcomes(passed=4)


def test_anyio_and_asyncio_tests_side_by_side_with_the_local_cluster(pytester: pytest.Pytester) -> None:
    configure(
        pytester, "asyncio_default_fixture_loop_scope = function\nredis_orm_server = redis\n", ANYIO_CONFTEST
    )
    pytester.makepyfile(
        test_on_anyio="import pytest\npytestmark = pytest.mark.anyio\n" + CLUSTER_TEST,
        test_on_asyncio="import pytest\npytestmark = pytest.mark.asyncio\n" + USER_TESTS,
    )
    result = run(pytester)
    result.assert_outcomes(passed=6)


def test_the_testing_page_example_runs_as_documented(pytester: pytest.Pytester) -> None:
    """docs/examples/test_users.py with docs/examples/pytest-settings.toml, as docs/testing.md
    shows them."""
    pytester.makepyprojecttoml((ROOT / "docs/examples/pytest-settings.toml").read_text())
    pytester.makepyfile(test_users=(ROOT / "docs/examples/test_users.py").read_text())
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(passed=5)


def test_a_wrong_server_kind_is_a_usage_error(pytester: pytest.Pytester) -> None:
    configure(pytester, "redis_orm_server = memcached\n", ANYIO_CONFTEST)
    pytester.makepyfile(test_user="import pytest\npytestmark = pytest.mark.anyio\n" + USER_TESTS)
    result = run(pytester, "-p", "no:asyncio")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*redis_orm_server must be redis or valkey, not 'memcached'*"])


def test_the_plugin_is_registered_as_a_pytest11_entry_point_named_after_its_module() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["pytest11"]
    assert entry_points == {PLUGIN: PLUGIN}
    assert sys.modules[PLUGIN] is plugin
    assert {
        "orm_factory",
        "redis_orm_server",
        "redis_orm_url",
        "redis_orm_upstash",
        "redis_orm_cluster",
    } <= set(vars(plugin))
