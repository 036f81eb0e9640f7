"""How far a long walk has gone (audit, repair, reindex, sweep, inspect), for whoever watches.

The engine reports; it never draws. The command line draws a bar on a terminal, a worker may log,
and the default tells no one, so a library call pays nothing for it.
"""

from __future__ import annotations


class Progress:
    """Told when a walk starts (with its length, if known), how far it got, and when it ends."""

    def start(self, label: str, total: int | None = None) -> None:
        """A new walk begins; the previous one, if any, is over."""

    def advance(self, count: int = 1) -> None:
        """``count`` more items of the current walk are done."""

    def finish(self) -> None:
        """The current walk is over."""


QUIET = Progress()
