"""The demo runs end to end on a private embedded server."""

from __future__ import annotations

import subprocess
import sys

from redis_orm_async._demo import run_demo
from redis_orm_async.testing import EmbeddedRedis


async def test_demo_tells_the_whole_story(redis_server: EmbeddedRedis, raw: object) -> None:
    lines: list[str] = []
    await run_demo(redis_server.url, say=lines.append)
    text = "\n".join(lines)
    assert "unique violation" in text and "code=unique_violation" in text
    assert "consumed once:    True; twice: None" in text
    assert "users left: 0" in text
    assert text.count("ok=True") == 3
    assert "supports_transactions=False" in text


def test_the_console_command_starts_its_own_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redis_orm_async", "demo"], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "connected to redis" in result.stdout and "ok=True" in result.stdout
