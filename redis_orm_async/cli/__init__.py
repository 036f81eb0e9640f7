"""The ``redis-orm-async`` command line (``python -m redis_orm_async`` runs it too)."""

from __future__ import annotations

from collections.abc import Sequence

from ._app import cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns its exit code instead of exiting when it can."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="redis-orm-async")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


__all__ = ["cli", "main"]
