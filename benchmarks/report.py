"""The terminal report: Markdown pipe tables, so the same text goes into the README."""

from __future__ import annotations

from .env import LINES, ORM, RAW, RAW_BATCHED, RAW_WATCH
from .harness import CaseResult, Report
from .measure import LineStats

PER_LINE = "orm/raw/watch/batched"
HEADERS = (
    "case", "workload", "orm ops/s", "raw ops/s", "orm/raw", "raw-watch ops/s", "orm/raw-watch",
    "batched ops/s", "orm/batched", "target", "met", f"cmds/op {PER_LINE}", f"RT/op {PER_LINE}",
    f"CPU µs/op {PER_LINE}", f"server µs/op {PER_LINE}", "agree",
)  # fmt: skip
RIGHT = {2, 3, 4, 5, 6, 7, 8}


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
    """One value per line in the order orm / raw / raw-watch / raw-batched, "—" where absent."""
    values = []
    for line in LINES:
        stats = case.lines.get(line)
        values.append("—" if stats is None else _number(getattr(stats, attribute)))
    return " / ".join(values)


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def _row(case: CaseResult) -> list[str]:
    if not case.available:
        return [case.key, case.title, *["n/a"] * (len(HEADERS) - 2)]
    return [
        case.key,
        case.title,
        _rate(case.lines.get(ORM)),
        _rate(case.lines.get(RAW)),
        _ratio(case.ratio(RAW)),
        _rate(case.lines.get(RAW_WATCH)),
        _ratio(case.ratio(RAW_WATCH)),
        _rate(case.lines.get(RAW_BATCHED)),
        _ratio(case.ratio(RAW_BATCHED)),
        "—" if case.target is None else case.target.describe(),
        _met(case.target_met),
        _per_line(case, "commands_per_op"),
        _per_line(case, "round_trips_per_op"),
        _per_line(case, "cpu_us_per_op"),
        _per_line(case, "server_cpu_us_per_op"),
        "yes" if case.agree else "**no**",
    ]


def table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in pairs]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths))
    return [line(rows[0]), rule + "|", *(line(row) for row in rows[1:])]


def targets(report: Report) -> list[str]:
    rows = [["case", "target", "measured", "met"]]
    for case in report.cases:
        if case.target is None:
            continue
        measured = case.verdict.measured if case.verdict is not None and case.available else "not measured"
        rows.append([case.key, case.target.describe(), measured, _met(case.target_met)])
    return table(rows, set()) if len(rows) > 1 else []


def render(report: Report) -> str:
    out = table([list(HEADERS), *(_row(case) for case in report.cases)], RIGHT)
    out.append("")
    meta = report.meta
    out.append(
        f"commit {meta['commit']}, mode {meta['mode']}, median of {meta['repetitions']} runs, "
        f"redis-server {meta['redis_server']}, Python {meta['python']}, redis-py {meta['redis_py']} "
        f"+ hiredis {meta['hiredis']}, pydantic {meta['pydantic']}, {meta['cpus']} CPUs, load average "
        f"{meta['load_average']['before']:.1f} before and {meta['load_average']['after']:.1f} after"
    )
    target_lines = targets(report)
    if target_lines:
        out.extend(["", "Targets (ratios to the fastest correct raw line in this run):", "", *target_lines])
    notes = [remark for case in report.cases for remark in case.remarks]
    for case in report.cases:
        if not case.available:
            notes.append(f"{case.key}: {case.reason}")
        notes.extend(f"{case.key}: {problem}" for problem in case.problems)
    if notes:
        out.extend(["", *notes])
    return "\n".join(out)
