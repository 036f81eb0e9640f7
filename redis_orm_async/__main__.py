"""``python -m redis_orm_async demo``: a short tour on a private embedded redis-server."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

import anyio

from ._demo import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redis-orm-async")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo (embedded server unless REDIS_URL is set)")
    demo.add_argument("--backend", choices=["redis", "upstash"], default="redis")
    args = parser.parse_args(argv)
    if args.command == "demo":
        anyio.run(run_demo, os.environ.get("REDIS_URL"), args.backend, timedelta(seconds=30))
    return 0


if __name__ == "__main__":
    sys.exit(main())
