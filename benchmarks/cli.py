"""``python -m benchmarks [--smoke | --quick] [--only W1,W8] [--json PATH]``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import anyio

from .env import Settings
from .harness import run
from .report import render

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="The ORM against hand-written redis.asyncio code, on a private redis-server.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="about 90 s: 3 runs of each line")
    size.add_argument("--smoke", action="store_true", help="a handful of operations: checks, not numbers")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W8")
    parser.add_argument("--repetitions", type=int, help="runs of each line (the median is reported)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.smoke() if args.smoke else Settings.quick() if args.quick else Settings.full()
    if args.only:
        settings = settings.only(tuple(part.strip().upper() for part in args.only.split(",") if part.strip()))
    if args.repetitions:
        settings = replace(settings, repetitions=args.repetitions)
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = settings_from(args)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async def go() -> str:
        report = await run(settings, json_path=args.json, log=log)
        return render(report)

    print(anyio.run(go))
    print(f"\nJSON written to {args.json}")
    return 0
