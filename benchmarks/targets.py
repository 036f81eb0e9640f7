"""The issue's targets, each a set of conditions on the ORM line, judged after every case has run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .env import ORM, RAW
from .measure import LineStats


class Measured(Protocol):
    """What a target needs of a case's result (``harness.CaseResult``)."""

    key: str
    lines: dict[str, LineStats]


@dataclass(frozen=True)
class Target:
    """Goals for the ORM line, any of them optional:

    - ``minimum``: ORM ops/s at least this fraction of the ``baseline`` line's, in the same run;
    - ``round_trips``: at most this many round trips per operation;
    - ``commands``: at most this multiple of the ``baseline`` line's server commands per operation;
    - ``slowdown``: time per operation at most this multiple of the ORM's own in case ``reference``
      (the same read before a change of data).
    """

    minimum: float | None = None
    baseline: str = RAW
    round_trips: float | None = None
    commands: float | None = None
    slowdown: float | None = None
    reference: str = ""

    def describe(self) -> str:
        parts: list[str] = []
        if self.minimum is not None:
            parts.append(f">= {self.minimum:.2f} x {self.baseline}")
        if self.round_trips is not None:
            parts.append(f"<= {self.round_trips:g} RT/op")
        if self.commands is not None:
            parts.append(f"<= {self.commands:g}x {self.baseline} cmds/op")
        if self.slowdown is not None:
            parts.append(f"<= {self.slowdown:g}x time/op of {self.reference}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Verdict:
    measured: str
    met: bool | None
    """None when the case could not be measured."""


def _slowdown(mine: Measured, reference: Measured, line: str) -> float | None:
    now, before = mine.lines.get(line), reference.lines.get(line)
    if now is None or before is None or not now.ops_per_s:
        return None
    return before.ops_per_s / now.ops_per_s


def judge(target: Target, result: Measured, results: Mapping[str, Measured]) -> Verdict:
    orm = result.lines.get(ORM)
    if orm is None:
        return Verdict("not measured", None)
    texts: list[str] = []
    met = True
    if target.minimum is not None or target.commands is not None:
        base = result.lines.get(target.baseline)
        if base is None or not base.ops_per_s or not base.commands_per_op:
            return Verdict(f"no {target.baseline} line", None)
        ratio = orm.ops_per_s / base.ops_per_s
        if target.minimum is not None:
            texts.append(f"{ratio:.2f}")
            met = met and ratio >= target.minimum
        if target.commands is not None:
            commands = orm.commands_per_op / base.commands_per_op
            texts.append(f"{commands:.2f}x cmds")
            met = met and commands <= target.commands + 1e-9
    if target.round_trips is not None:
        texts.append(f"{orm.round_trips_per_op:.3g} RT/op")
        met = met and orm.round_trips_per_op <= target.round_trips + 1e-9
    if target.slowdown is not None:
        reference = results.get(target.reference)
        slowdown = None if reference is None else _slowdown(result, reference, ORM)
        if reference is None or slowdown is None:
            return Verdict(f"{target.reference} not measured", None)
        raw = _slowdown(result, reference, RAW)
        texts.append(f"{slowdown:.2f}x" + ("" if raw is None else f" (raw {raw:.2f}x)"))
        met = met and slowdown <= target.slowdown
    return Verdict(", ".join(texts), met)
