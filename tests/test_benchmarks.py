"""The benchmark harness, run once in its smoke mode (as CI must, so that it cannot rot).

Only that every workload ran, with every line it names, and that the lines agree (equal first
results, duplicates refused, clean audits of the ORM's and the raw layout) are asserted; timings
and targets never are.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from benchmarks import Settings, run
from benchmarks.env import LINES, ORM
from benchmarks.harness import all_cases


async def test_every_workload_runs_and_every_line_agrees(tmp_path: Path) -> None:
    settings = Settings.smoke()
    path = tmp_path / "results.json"
    report = await run(settings, json_path=path)

    cases = {case.key: case for case in all_cases(settings)}
    assert [result.key for result in report.cases] == list(cases)
    for result in report.cases:
        assert result.available, f"{result.key}: {result.reason}"
        assert result.agree, f"{result.key}: {result.problems}"
        assert tuple(result.lines) == cases[result.key].lines
        assert result.lines.keys() <= set(LINES) and ORM in result.lines
        if result.target is not None:
            assert result.verdict is not None and result.verdict.met is not None, result.key
        for line, stats in result.lines.items():
            assert 0 < stats.ops <= settings.ops[result.key], (result.key, line)
            assert stats.commands_per_op > 0 and stats.round_trips_per_op > 0, (result.key, line)
            assert len(stats.ops_per_s_runs) == settings.repetitions

    saved = json.loads(await anyio.Path(path).read_text())
    assert [case["key"] for case in saved["cases"]] == [result.key for result in report.cases]
    assert saved["meta"]["mode"] == "smoke"
