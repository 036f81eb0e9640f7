"""The benchmark harness, run once in its quick mode (as CI must, so that it cannot rot).

Only that every workload ran and that the ORM's results agree with the raw line's are asserted;
timings never are.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from benchmarks import Settings, run
from benchmarks.cases import all_cases
from benchmarks.env import LINES, ORM


async def test_every_workload_runs_and_the_orm_agrees_with_raw(tmp_path: Path) -> None:
    settings = Settings.quick()
    path = tmp_path / "results.json"
    report = await run(settings, json_path=path)

    assert [case.key for case in report.cases] == [case.key for case in all_cases()]
    for case in report.cases:
        assert case.available, f"{case.key}: {case.reason}"
        assert case.agree, f"{case.key}: {case.problems}"
        assert ORM in case.lines and len(case.lines) >= 2
        for line, stats in case.lines.items():
            assert line in LINES
            assert stats.ops == settings.ops[case.key]
            assert stats.commands_per_op > 0 and stats.round_trips_per_op > 0, (case.key, line)
            assert len(stats.ops_per_s_runs) == settings.repetitions

    saved = json.loads(await anyio.Path(path).read_text())
    assert [case["key"] for case in saved["cases"]] == [case.key for case in report.cases]
    assert saved["meta"]["mode"] == "quick"
