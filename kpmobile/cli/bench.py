"""`kpmobile bench`: parse the sweep's options and call the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kpmobile.cli.output import console, emit_json, fail, fail_on
from kpmobile.cli.progress import RichProgress
from kpmobile.errors import KpError


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _ints(values: list[str] | None, flag: str) -> list[int]:
    try:
        out = [int(v) for v in _split(values)]
    except ValueError:
        fail(f"{flag} takes whole numbers separated by commas", f"e.g. {flag} 1,4")
    if any(v < 1 for v in out):
        fail(f"{flag} values must be 1 or more", f"e.g. {flag} 1,4")
    return out


def register(app: typer.Typer) -> None:
    """Add the bench command to `app`."""

    @app.command()
    def bench(
        models: list[str] = typer.Option(None, "--models", "-m", help="Catalogue names or model dirs (comma list)."),
        threads: list[str] = typer.Option(None, "--threads", "-t", help="Thread counts, e.g. 1,4."),
        device: list[str] = typer.Option(None, "--device", "-d", help="Serial to use (repeatable); default all."),
        adb_server: list[str] = typer.Option(None, "--adb-server", help="adb server HOST:PORT (repeatable)."),
        no_virtual: bool = typer.Option(False, "--no-virtual", help="Never start a virtual phone."),
        runner: Path = typer.Option(None, "--runner", help="Paddle Lite benchmark_bin for ARM phones."),
        warmup: int = typer.Option(10, min=0, help="Warm-up runs per case."),
        repeats: int = typer.Option(30, min=1, help="Timed runs per case."),
        rounds: int = typer.Option(1, min=1, help="Separate runner invocations per cell."),
        power_mode: int = typer.Option(0, min=0, max=3, help="0 big cores, 1 little, 2 all, 3 no bind."),
        out: Path = typer.Option(Path("kpmobile-out"), "--out", help="Folder for pulled logs."),
        db: Path = typer.Option(None, "--db", help="SQLite store (default in $KPMOBILE_HOME)."),
        resume: str = typer.Option(None, "--resume", help="Run id whose missing cases to run."),
        case_timeout: float = typer.Option(600.0, help="Seconds before a hung runner is killed."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome and table as JSON."),
    ) -> None:
        """Convert, push, run and store every case, then print the mobile table."""
        from kpmobile.report.mobile import mobile_table
        from kpmobile.report.table import to_rich
        from kpmobile.store import Store
        from kpmobile.sweep.execute import run_bench
        from kpmobile.sweep.plan import DEFAULT_MODELS, BenchOptions

        opts = BenchOptions(
            models=_split(models) or list(DEFAULT_MODELS), threads=_ints(threads, "--threads") or [1, 4],
            devices=_split(device), servers=_split(adb_server), no_virtual=no_virtual, runner=runner,
            warmup=warmup, repeats=repeats, rounds=rounds, power_mode=power_mode, out_dir=out, db=db,
            resume=resume, case_timeout_s=case_timeout, command="kpmobile bench " + json.dumps(
                {"models": models, "threads": threads, "device": device, "resume": resume}),
        )
        try:
            with RichProgress(enabled=not as_json) as progress:
                outcome = run_bench(opts, progress)
            store = Store(outcome.db)
            table = mobile_table(store.run(outcome.run_id).plan, store.cases(outcome.run_id))
        except KpError as exc:
            fail_on(exc)
        if as_json:
            emit_json({**outcome.to_json(), "table": {"header": table.header, "rows": table.rows,
                                                       "cells": table.data}})
        else:
            c = outcome.counters
            console.print(f"run {outcome.run_id}: {outcome.ok} cases ok, {outcome.failed} failed; "
                          f"converted {c.conversions} (cached {c.conversions_cached}), "
                          f"pushed {c.pushes} files (already on device {c.pushes_skipped})", highlight=False)
            for line in outcome.failures:
                console.print(f"[red]failed:[/] {line}", highlight=False)
            console.print(to_rich(table))
        if outcome.failed:
            raise typer.Exit(1)
