"""The terminal table: a Markdown pipe table, so the same text goes into the README."""

from __future__ import annotations

from .env import ORM, RAW, RAW_BATCHED
from .harness import CaseResult, Report
from .measure import LineStats

HEADERS = (
    "case", "workload", "orm ops/s", "raw ops/s", "orm/raw", "batched ops/s", "orm/batched",
    "target", "met", "cmds/op orm/raw/batched", "RT/op orm/raw/batched", "CPU µs/op orm/raw/batched",
    "server µs/op orm/raw/batched", "agree",
)  # fmt: skip


def _rate(stats: LineStats | None) -> str:
    return "—" if stats is None else f"{stats.ops_per_s:,.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _number(value: float) -> str:
    if 0 < value < 0.1:
        return f"{value:.3f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10 or value == int(value):
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}"


def _per_line(case: CaseResult, attribute: str) -> str:
    values = []
    for line in (ORM, RAW, RAW_BATCHED):
        stats = case.lines.get(line)
        if stats is not None:
            values.append(_number(getattr(stats, attribute)))
    return " / ".join(values)


def _row(case: CaseResult) -> list[str]:
    if not case.available:
        return [case.key, case.title, *["n/a"] * (len(HEADERS) - 2)]
    met = case.target_met
    return [
        case.key,
        case.title,
        _rate(case.lines.get(ORM)),
        _rate(case.lines.get(RAW)),
        _ratio(case.ratio(RAW)),
        _rate(case.lines.get(RAW_BATCHED)),
        _ratio(case.ratio(RAW_BATCHED)),
        "—" if case.target is None else case.target.describe(),
        "—" if met is None else ("yes" if met else "**no**"),
        _per_line(case, "commands_per_op"),
        _per_line(case, "round_trips_per_op"),
        _per_line(case, "cpu_us_per_op"),
        _per_line(case, "server_cpu_us_per_op"),
        "yes" if case.agree else "**no**",
    ]


def render(report: Report) -> str:
    rows = [list(HEADERS), *(_row(case) for case in report.cases)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {2, 3, 4, 5, 6}

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in pairs]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths))
    rule += "|"
    meta = report.meta
    out = [line(rows[0]), rule, *(line(row) for row in rows[1:]), ""]
    out.append(
        f"commit {meta['commit']}, mode {meta['mode']}, median of {meta['repetitions']} runs, "
        f"redis-server {meta['redis_server']}, Python {meta['python']}, redis-py {meta['redis_py']} "
        f"+ hiredis {meta['hiredis']}, pydantic {meta['pydantic']}, {meta['cpus']} CPUs, load average "
        f"{meta['load_average']['before']:.1f} before and {meta['load_average']['after']:.1f} after"
    )
    for case in report.cases:
        if not case.available:
            out.append(f"{case.key}: {case.reason}")
        for problem in case.problems:
            out.append(f"{case.key}: {problem}")
    return "\n".join(out)
