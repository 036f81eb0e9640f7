"""Docs are code: README examples are excerpts of real files, and those files run."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from redis_orm_async.testing import EmbeddedRedis, UpstashRestServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_BLOCK = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)```\n<!-- end example -->", re.S)


def load_example(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_documented_example_is_an_excerpt_of_its_file() -> None:
    for document in DOCUMENTS:
        blocks = EXAMPLE_BLOCK.findall(document.read_text())
        assert blocks, f"{document.name} has no example blocks"
        for relative, block in blocks:
            source = (ROOT / relative).read_text()
            assert block.strip() in source, f"{document.name}: block drifted from {relative}"


async def test_quickstart_runs(redis_server: EmbeddedRedis, raw: object) -> None:
    result = await load_example("docs/examples/quickstart.py").main(redis_server.url)
    assert result == {"same": True, "age": 37, "violated": "email", "count": 1}


async def test_upstash_example_runs(upstash_server: UpstashRestServer, raw: object) -> None:
    example = load_example("docs/examples/upstash.py")
    result = await example.main(upstash_server.url, upstash_server.token)
    assert result == {"same": True, "age": 37, "violated": "email", "count": 1, "guard": "script"}


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
