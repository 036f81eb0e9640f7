"""Benchmarks: the ORM against hand-written ``redis.asyncio`` code doing the same work.

Run ``python -m benchmarks --quick``; see ``benchmarks/README.md`` for what each line and each
column means. ``run`` is the in-process entry point the test suite uses.
"""

from .harness import Report, Settings, run

__all__ = ["Report", "Settings", "run"]
