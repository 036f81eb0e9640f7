"""ruff and mypy --strict are part of the test command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "redis_orm_async", "tests", "benchmarks", "docs")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_the_package_and_typing_checks() -> None:
    checked = ["redis_orm_async", "tests/typing_checks.py", "docs/examples/fastapi_app.py"]
    result = run("mypy", "--strict", *checked)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_ships_py_typed() -> None:
    assert (ROOT / "redis_orm_async" / "py.typed").exists()
