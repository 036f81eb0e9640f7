"""The ``redis-orm-async`` commands: inspect, audit, repair, reindex, sweep and demo.

Every command that reads a model takes the schema by import path (``app.models:schema``) and a
server (``--url``, ``REDIS_URL``, or Upstash's two variables). ``--json`` prints one JSON document
on stdout; progress bars go to stderr, and only on a terminal. The exit code says how it went, so
a cron job or a CI step can act on it: 0 all is well, 1 the data needs attention (problems found,
duplicates left, an index not built, a reindex refused), 2 the command line was wrong (click's
own code), 3 the server could not be used.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import click

from .._engine.built import describe
from .._errors import OrmError
from .._model.schema import Schema
from .._orm import Orm
from ._connect import Target, load_schema, open_orm, pick_models, resolve_target
from ._progress import TerminalProgress

OK, PROBLEMS, FAILED = 0, 1, 3
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Outcome:
    """What a command found: its JSON payload, its lines for a person, and its exit code."""

    def __init__(self) -> None:
        self.payload: dict[str, Any] = {"ok": True}
        self.lines: list[str] = []
        self.code = OK

    def problem(self) -> None:
        self.code = max(self.code, PROBLEMS)
        self.payload["ok"] = False


def _version() -> str:
    from .. import __version__

    return __version__


def server_options(func: F) -> F:
    """``SCHEMA``, ``--url`` and ``--json``, shared by every command that reads models."""
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)
    func = click.option(
        "--url",
        metavar="URL",
        default=None,
        help="redis://, rediss:// or an Upstash https:// URL (default: $REDIS_URL, then "
        "$UPSTASH_REDIS_REST_URL with $UPSTASH_REDIS_REST_TOKEN).",
    )(func)
    return click.argument("schema", metavar="APP:SCHEMA")(func)


def model_option(func: F) -> F:
    return click.option(
        "--model", "-m", "models", multiple=True, metavar="MODEL", help="Only this model (repeatable)."
    )(func)


def batch_option(func: F) -> F:
    return click.option(
        "--batch", type=click.IntRange(1, 100_000), default=500, show_default=True, help="Records per step."
    )(func)


def run(
    as_json: bool,
    url: str | None,
    schema_path: str,
    body: Callable[[Orm, Schema, Outcome, TerminalProgress], Awaitable[None]],
) -> None:
    """Resolve the schema and server, run ``body`` on a connected ORM, print, and exit."""
    schema = load_schema(schema_path)
    target = resolve_target(url, os.environ)
    outcome = Outcome()
    progress = TerminalProgress(sys.stderr)

    async def main() -> None:
        async with open_orm(target, schema) as orm:
            await body(orm, schema, outcome, progress)

    try:
        anyio.run(main)
    except OrmError as exc:
        progress.finish()
        _fail(as_json, target, exc)
    _print(outcome, as_json)
    sys.exit(outcome.code)


def _fail(as_json: bool, target: Target, exc: OrmError) -> None:
    message = f"cannot use {target.shown()}: {exc}"
    if as_json:
        error = {"code": exc.code, "message": message, "retryable": exc.retryable}
        click.echo(json.dumps({"ok": False, "error": error}, indent=2))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(FAILED)


def _print(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(outcome.payload, indent=2, sort_keys=False))
    else:
        for line in outcome.lines:
            click.echo(line)


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="redis-orm-async")
def cli() -> None:
    """Look after the data of a redis-orm-async schema: inspect, audit, repair, reindex, sweep.

    APP:SCHEMA names the schema by import path, as uvicorn names an app: app.models:schema.
    Exit codes: 0 all is well, 1 the data needs attention, 2 bad usage, 3 server unusable.
    """


@cli.command()
@server_options
@model_option
def inspect(schema: str, url: str | None, as_json: bool, models: tuple[str, ...]) -> None:
    """Per model: records, index keys, claims, expiry backlog, memory; and the server."""

    async def body(orm: Orm, loaded: Schema, outcome: Outcome, progress: TerminalProgress) -> None:
        features = orm.backend.features
        version = ".".join(str(part) for part in features.server_version) or "unknown"
        server = {
            "backend": features.kind,
            "kind": features.server_kind or "unknown",
            "version": version,
            "maxmemory_policy": features.maxmemory_policy or "unknown",
        }
        outcome.payload["server"] = server
        policy = features.maxmemory_policy
        outcome.lines.append(
            f"server: {server['kind']} {version} via {features.kind}, "
            f"maxmemory-policy {server['maxmemory_policy']}"
        )
        if policy not in ("", "noeviction"):
            outcome.problem()
            outcome.lines.append(
                f"  warning: {policy!r} may evict index and claim keys; set noeviction, or run repair"
            )
        found = []
        for model in pick_models(loaded, models):
            stats = await orm.inspect(model, progress=progress)
            found.append(asdict(stats))
            outcome.lines.append(
                f"{stats.model} {stats.prefix}: {stats.records} records ({stats.listed} listed), "
                f"{stats.index_keys} index keys ({stats.index_entries} entries), {stats.claims} claims, "
                f"{stats.expiring} expiring ({stats.expiry_backlog} expired awaiting sweep), "
                f"{stats.keys} keys, memory ~{_size(stats.memory)}"
            )
            pending = [name for name, built in stats.indexes.items() if not built]
            if stats.indexes:
                built = [describe(name) for name, done in stats.indexes.items() if done]
                outcome.lines.append(f"  built: {', '.join(built) or 'none'}")
            if pending and stats.listed:
                outcome.problem()
                outcome.lines.append(
                    f"  not built: {', '.join(describe(name) for name in pending)} "
                    f"(run: redis-orm-async reindex {schema} {stats.model})"
                )
        outcome.payload["models"] = found

    run(as_json, url, schema, body)


@cli.command()
@server_options
@model_option
def audit(schema: str, url: str | None, as_json: bool, models: tuple[str, ...]) -> None:
    """Compare each model's records with its index keys and claims (reads only)."""

    async def body(orm: Orm, loaded: Schema, outcome: Outcome, progress: TerminalProgress) -> None:
        reports = []
        for model in pick_models(loaded, models):
            report = await orm.audit(model, progress=progress)
            reports.append(
                {
                    "model": report.model,
                    "records": report.records,
                    "ok": report.ok,
                    "problems": [asdict(problem) for problem in report.problems],
                }
            )
            outcome.lines.append(str(report))
            if not report.ok:
                outcome.problem()
        outcome.payload["models"] = reports

    run(as_json, url, schema, body)


@cli.command()
@server_options
@model_option
@batch_option
@click.option("--dry-run", is_flag=True, help="Only say what repair would change (an audit).")
def repair(
    schema: str, url: str | None, as_json: bool, models: tuple[str, ...], batch: int, dry_run: bool
) -> None:
    """Rebuild index entries, claims and state lines from the records, safe while writes go on.

    With --dry-run nothing is written, and the exit code is 1 if repair has work to do.
    """

    async def body(orm: Orm, loaded: Schema, outcome: Outcome, progress: TerminalProgress) -> None:
        outcome.payload["dry_run"] = dry_run
        reports: list[dict[str, Any]] = []
        for model in pick_models(loaded, models):
            if dry_run:
                audited = await orm.audit(model, progress=progress)
                kinds: dict[str, int] = {}
                for problem in audited.problems:
                    kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
                reports.append({"model": audited.model, "records": audited.records, "would_fix": kinds})
                summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "nothing"
                outcome.lines.append(f"repair of {audited.model} would fix: {summary}")
                if kinds:
                    outcome.problem()
                continue
            report = await orm.repair(model, batch=batch, progress=progress)
            conflicts = [{"constraint": name, "id": id_text} for name, id_text in report.conflicts]
            reports.append(
                {
                    "model": report.model,
                    "records": report.records,
                    "removed": report.removed,
                    "conflicts": conflicts,
                }
            )
            outcome.lines.append(str(report))
            outcome.lines.extend(f"  duplicate {c['constraint']}: {c['id']}" for c in conflicts)
            if conflicts:
                outcome.problem()
        outcome.payload["models"] = reports

    run(as_json, url, schema, body)


@cli.command()
@server_options
@click.argument("model", metavar="MODEL")
@batch_option
@click.option("--all", "rebuild_all", is_flag=True, help="Rebuild every index, not only those not built yet.")
def reindex(schema: str, url: str | None, as_json: bool, model: str, batch: int, rebuild_all: bool) -> None:
    """Backfill MODEL's new indexes and uniques in batches, resumable, safe while writes go on.

    A new unique that existing records violate is refused before anything is written, and the
    conflicting ids are listed (exit code 1).
    """

    async def body(orm: Orm, loaded: Schema, outcome: Outcome, progress: TerminalProgress) -> None:
        (chosen,) = pick_models(loaded, (model,))
        report = await orm.reindex(chosen, batch=batch, rebuild_all=rebuild_all, progress=progress)
        outcome.payload.update(
            {
                "model": report.model,
                "indexes": report.indexes,
                "records": report.records,
                "resumed_after": report.resumed,
                "refused": report.refused,
                "conflicts": [{"constraint": c.constraint, "ids": list(c.ids)} for c in report.conflicts],
            }
        )
        outcome.lines.append(str(report))
        if not report.ok:
            outcome.problem()

    run(as_json, url, schema, body)


@cli.command()
@server_options
@model_option
@batch_option
def sweep(schema: str, url: str | None, as_json: bool, models: tuple[str, ...], batch: int) -> None:
    """Remove the index entries of expired records now (writes and reads also do it as they go)."""

    async def body(orm: Orm, loaded: Schema, outcome: Outcome, progress: TerminalProgress) -> None:
        swept: dict[str, int] = {}
        for model in pick_models(loaded, models):
            swept[model.__name__] = await orm.sweep(model, batch=batch, progress=progress)
            outcome.lines.append(
                f"sweep of {model.__name__}: {swept[model.__name__]} expired records removed"
            )
        outcome.payload["swept"] = swept

    run(as_json, url, schema, body)


@cli.command()
@click.option("--backend", type=click.Choice(["redis", "upstash"]), default="redis", show_default=True)
def demo(backend: str) -> None:
    """A short tour on a private embedded server (or on $REDIS_URL)."""
    from .._demo import run_demo

    anyio.run(run_demo, os.environ.get("REDIS_URL"), backend, timedelta(seconds=30))
