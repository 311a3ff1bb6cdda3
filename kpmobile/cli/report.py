"""`kpmobile report ...`: print tables again from the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kpmobile.cli.output import console, emit_json, fail_on, say
from kpmobile.errors import KpError

if TYPE_CHECKING:
    from kpmobile.store import CaseRow, RunRow, Store

app = typer.Typer(no_args_is_help=True, help="Print tables from the store.")


class Format(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


def _print(table: object, fmt: Format) -> None:
    from kpmobile.report.table import Table, to_csv, to_json, to_markdown, to_rich

    assert isinstance(table, Table)
    if fmt is Format.json:
        emit_json(to_json(table))
    elif fmt is Format.md:
        print(to_markdown(table), end="")
    elif fmt is Format.csv:
        print(to_csv(table), end="")
    else:
        console.print(to_rich(table))


def _load(db: Path | None, run: str | None, host: bool = False) -> tuple[Store, RunRow, list[CaseRow]]:
    """Give the store, the run (the latest, or the latest host run) and its cases; exit on a bad store or id."""
    from kpmobile.paths import default_db
    from kpmobile.report.server import host_run
    from kpmobile.store import Store

    try:
        store = Store(db or default_db(), readonly=True)
        row = host_run(store, run) if host else store.run(run)
        return store, row, store.cases(row.id)
    except KpError as exc:
        fail_on(exc)


@app.command()
def mobile(
    run: str = typer.Option(None, "--run", help="Run id (default: the latest)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print the mobile table of a run."""
    from kpmobile.report.mobile import mobile_table

    _, row, cases = _load(db, run)
    _print(mobile_table(row.plan, cases), fmt)


@app.command()
def memory(
    run: str = typer.Option(None, "--run", help="Run id (default: the latest)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print init / peak MB per cell of a run measured with `kpmobile bench --memory`."""
    from kpmobile.report.mobile import memory_table

    _, row, cases = _load(db, run)
    _print(memory_table(row.plan, cases), fmt)


def _print_all(tables: list[object], fmt: Format) -> None:
    from kpmobile.report.table import Table, to_json

    if fmt is Format.json:
        emit_json({"tables": [to_json(t) for t in tables if isinstance(t, Table)]})
        return
    for i, table in enumerate(tables):
        if i and fmt is not Format.table:
            print()
        _print(table, fmt)


@app.command()
def server(
    run: str = typer.Option(None, "--run", help="Host run id (default: the latest host run)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print the server table of a host run (and the table of the backends the seed has no column for)."""
    from kpmobile.report.server import server_tables

    _, row, cases = _load(db, run, host=True)
    _print_all(list(server_tables(row.plan, cases)), fmt)


@app.command()
def complexity(
    run: str = typer.Option(None, "--run", help="Host run id (default: the latest host run)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print the MMPose-style complexity table of a host run: FLOPs, params, FPS mean ± std per batch."""
    from kpmobile.report.complexity import complexity_table

    _, row, cases = _load(db, run, host=True)
    _print(complexity_table(row.plan, cases), fmt)


def _flops_measure(no_flops: bool) -> Callable[[Sequence[str]], dict[str, float | None]] | None:
    """Give the zoo's FLOPs measurement for models a run's plan lacks, or None with --no-flops."""
    from kpmobile.zoo.complexity import models_flops

    return None if no_flops else models_flops


@app.command()
def plots(
    out: Path = typer.Option(..., "--out", help="Folder for the PNG files."),
    run: str = typer.Option(None, "--run", help="Run id (default: the latest)."),
    no_flops: bool = typer.Option(False, "--no-flops", help="Do not measure FLOPs the run lacks."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
    as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
) -> None:
    """Write PNG plots of a run: latency vs threads, pipeline vs persons, device bars, roofline."""
    from kpmobile.report.plots import run_flops, run_plots, write_plots

    _, row, cases = _load(db, run)
    figures = run_plots(row, cases, run_flops(row, cases, measure=_flops_measure(no_flops)))
    written = write_plots(figures, out)
    if as_json:
        emit_json({"run_id": row.id, "files": [str(p) for p in written],
                   "skipped": [{"name": f.name, "note": f.note} for f in figures if f.png is None]})
        return
    for path in written:
        say(f"wrote {path}")
    for f in figures:
        if f.png is None:
            say(("note:", "yellow"), f" {f.title}: {f.note}")


@app.command()
def html(
    out: Path = typer.Option(..., "--out", help="HTML file to write."),
    run: str = typer.Option(None, "--run", help="Run id (default: the latest)."),
    no_flops: bool = typer.Option(False, "--no-flops", help="Do not measure FLOPs the run lacks."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Write one self-contained HTML report of a run: tables, inline plots, devices and metadata."""
    from kpmobile.report.html import html_report
    from kpmobile.report.plots import run_flops

    store, row, cases = _load(db, run)
    devices = store.devices()
    flops = run_flops(row, cases, measure=_flops_measure(no_flops))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html_report(row, cases, devices, flops), encoding="utf-8")
    say(f"wrote {out} ({out.stat().st_size // 1024} KiB) for run {row.id}")


@app.command()
def ops(
    run: str = typer.Argument(None, help="Run id (default: the latest)."),
    cell: list[str] = typer.Option(None, "--cell",
                                   help="Cell to show, e.g. pp-tinypose-128x96/4t or LABEL/MODEL (repeatable)."),
    diff: str = typer.Option(None, "--diff",
                             help="Another run id: show how each cell's kernels changed from RUN to it."),
    top: int = typer.Option(10, "--top", min=1, help="Kernels per cell."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print the slowest operators (kernels) of each cell profiled with `bench --op-profile`, or a diff of two runs."""
    from kpmobile.report.ops import diff_tables, ops_tables

    store, row, _ = _load(db, run)
    profiles = store.op_profiles(row.id)
    if diff is None:
        tables = ops_tables(row.plan, profiles, list(cell or []), top)
        _exit_if_empty(tables, f"run {row.id} has no op profile" + (" for those cells" if cell else ""))
        _print_all(list(tables), fmt)
        return
    try:
        other = store.run(diff)
    except KpError as exc:
        fail_on(exc)
    tables, alone = diff_tables(row.plan, profiles, other.plan, store.op_profiles(other.id), list(cell or []), top)
    _exit_if_empty(tables, f"runs {row.id} and {other.id} have no profiled cell in common")
    _print_all(list(tables), fmt)
    if alone and fmt is Format.table:
        console.print(f"note: profiled in one run only: {', '.join(alone)}", highlight=False, markup=False)


def _exit_if_empty(tables: Sequence[object], message: str,
                   hint: str = "profile cells with `kpmobile bench --op-profile --op-runner PROFILING_BENCHMARK_BIN`",
                   ) -> None:
    from kpmobile.cli.output import fail

    if not tables:
        fail(message, hint)


@app.command()
def energy(
    run: str = typer.Option(None, "--run", help="Run id (default: the latest)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print the energy per inference of each cell measured with `bench --energy`, and inferences per Wh."""
    from kpmobile.report.energy import energy_table

    _, row, cases = _load(db, run)
    table = energy_table(row.plan, cases)
    _exit_if_empty(table.rows, f"run {row.id} has no energy figures",
                   "measure them with `kpmobile bench --energy` on a phone with readable battery files")
    _print(table, fmt)
