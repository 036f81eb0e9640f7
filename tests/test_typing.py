"""The typing checks run by both checkers: each accepted form passes, each rejected form fails.

``tests/typing_expression_checks.py`` marks every rejected line with both checkers' ignore
comments; mypy --strict reports an unused ``# type: ignore`` and pyright an unnecessary
``# pyright: ignore`` (see ``[tool.pyright]`` in pyproject.toml), so a form that stops being
rejected fails here as surely as an accepted form that starts failing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = "tests/typing_expression_checks.py"
EXAMPLE = "docs/examples/typed_queries.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def pyright(*files: str) -> subprocess.CompletedProcess[str]:
    return run("pyright", "--pythonpath", sys.executable, "--project", str(ROOT / "pyproject.toml"), *files)


def test_mypy_strict_accepts_each_accepted_form_and_rejects_each_rejected_one() -> None:
    result = run("mypy", "--strict", CHECKS, EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_mypy_plugin_rejects_each_misspelled_name_in_dict_literals(tmp_path: Path) -> None:
    """``tests/typing_dict_checks.py``: field, operator, direction, relation and option names;
    without its markers, each rejected line is one ``[orm-query]`` error."""
    result = run("mypy", "--strict", "tests/typing_dict_checks.py")
    assert result.returncode == 0, result.stdout + result.stderr
    marked = (ROOT / "tests" / "typing_dict_checks.py").read_text()
    bare = tmp_path / "typing_dict_bare.py"
    bare.write_text(marked.replace("  # type: ignore[orm-query]", ""))
    result = run("mypy", "--strict", str(bare))
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    rejected = [line for line in marked.splitlines() if line.endswith("  # type: ignore[orm-query]")]
    assert len(errors) == len(rejected) > 10, result.stdout
    assert all(line.endswith("[orm-query]") for line in errors), result.stdout


def test_pyright_accepts_each_accepted_form_and_rejects_each_rejected_one() -> None:
    result = pyright()  # the files [tool.pyright] includes: every typing check
    assert result.returncode == 0, result.stdout + result.stderr
    assert "typing_expression_checks.py" not in result.stdout


def test_a_rejected_marker_on_an_accepted_line_fails_both_checkers(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("count: int = 1  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]\n")
    mypy = run("mypy", "--strict", str(wrong))
    assert mypy.returncode != 0 and 'Unused "type: ignore" comment' in mypy.stdout, mypy.stdout
    checked = pyright(str(wrong))
    assert checked.returncode != 0 and "Unnecessary" in checked.stdout, checked.stdout
