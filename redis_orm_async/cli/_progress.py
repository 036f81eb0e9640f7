"""A progress bar on a terminal, nothing anywhere else (a pipe, a file, cron's mail, CI's log)."""

from __future__ import annotations

import time
from typing import TextIO

from .._engine.progress import Progress

WIDTH = 30
REDRAW_EVERY = 0.1
"""Seconds between redraws: a walk of a million ids advances a thousand times a second."""


class TerminalProgress(Progress):
    """Draws ``label [#####-----] done/total pct%`` on one line of ``stream``, if it is a TTY."""

    def __init__(self, stream: TextIO, *, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.label = ""
        self.total: int | None = None
        self.done = 0
        self.active = False
        self.drawn_at = 0.0

    def start(self, label: str, total: int | None = None) -> None:
        self.finish()
        self.label, self.total, self.done, self.active = label, total, 0, True
        self._draw(force=True)

    def advance(self, count: int = 1) -> None:
        if not self.active:
            return
        self.done += count
        self._draw(force=self.total is not None and self.done >= self.total)

    def finish(self) -> None:
        if not self.active:
            return
        self.active = False
        self._draw(force=True)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        if self.total is None:
            return f"{self.label} {self.done}"
        total = max(self.total, 1)
        shown = min(self.done, total)
        filled = WIDTH * shown // total
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {100 * shown // total}%"

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.drawn_at < REDRAW_EVERY:
            return
        self.drawn_at = now
        self.stream.write("\r\x1b[2K" + self.line())
        self.stream.flush()
