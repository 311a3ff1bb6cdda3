"""`kpmobile runs list|show|compare|export|import|delete`: the history of sweeps in the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from kpmobile.cli.output import console, emit_json, fail_on, literal, say, warn
from kpmobile.errors import KpError
from kpmobile.records import PlanDevice

if TYPE_CHECKING:
    from kpmobile.report.compare import CellComparison
    from kpmobile.store import Store

app = typer.Typer(no_args_is_help=True, help="List, show, compare, export, import and delete stored runs.")

DB_HELP = "SQLite store (default in $KPMOBILE_HOME)."
T = TypeVar("T")


def _store(db: Path | None, *, write: bool = False) -> Store:
    """Give the store; opened read-only (URI mode=ro) unless the command writes to it."""
    from kpmobile.paths import default_db
    from kpmobile.store import Store

    return Store(db or default_db(), readonly=not write)


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_runs(
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List every stored run, oldest first, with its status, devices, models and case counts."""
    from rich.table import Table as RichTable

    try:
        store = _store(db)
        entries: list[dict[str, Any]] = []
        for run in store.runs():
            cases = store.cases(run.id)
            entries.append({
                "id": run.id, "started": run.started, "finished": run.finished, "status": run.shown_status(),
                "host": run.host, "pid": run.pid, "error": run.error, "command": run.command,
                "models": list(run.plan.models) or sorted({c.model for c in cases}),
                "devices": [run.plan.device_label(fp) for fp in run.plan.devices],
                "threads": list(run.plan.threads),
                "ok": sum(c.status == "ok" for c in cases), "failed": sum(c.status != "ok" for c in cases),
            })
    except KpError as exc:
        fail_on(exc)
    if as_json:
        emit_json(entries)
        return
    table = RichTable(title=literal(f"Runs in {store.path}"))
    for name in ("Run", "Started", "Status", "Devices", "Models", "Threads", "Cases ok/failed"):
        table.add_column(name, no_wrap=name == "Run")
    for e in entries:
        cells = (e["id"], _when(e["started"]), e["status"], ", ".join(map(str, e["devices"])),
                 ", ".join(map(str, e["models"])), ",".join(str(t) for t in e["threads"]), f"{e['ok']}/{e['failed']}")
        table.add_row(*map(literal, cells))
    console.print(table)


@app.command()
def show(
    run: str = typer.Argument(None, help="Run id (default: the latest)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a run: metadata, devices, the mobile table, rounds per cell and thread scaling."""
    from kpmobile.report.compare import device_order, rounds_table
    from kpmobile.report.mobile import mobile_table
    from kpmobile.report.scaling import emulated_labels, scaling_table, thread_scaling
    from kpmobile.report.table import to_json, to_rich

    try:
        store = _store(db)
        row = store.run(run)
        cases = store.cases(row.id)
        known = store.devices()
    except KpError as exc:
        fail_on(exc)
    fps = device_order(row, cases)
    scaling = thread_scaling(row, cases)
    tables = [mobile_table(row.plan, cases), rounds_table(row, cases),
              scaling_table(scaling, row.plan.models, emulated_labels(row, cases))]
    if as_json:
        emit_json({
            "run": {"id": row.id, "started": row.started, "finished": row.finished, "status": row.status,
                    "command": row.command, "host": row.host, "kpmobile_version": row.kpmobile_version,
                    "threads": list(row.plan.threads),
                    "models": {name: m.to_json() for name, m in row.plan.models.items()}},
            "devices": {fp: {**(row.plan.devices[fp].to_json() if fp in row.plan.devices else {}),
                             "info": known.get(fp)} for fp in fps},
            "tables": [to_json(t) for t in tables],
            "scaling": [s.to_json() for s in scaling],
            "failures": [{"model": c.model, "device": c.device_fp, "threads": c.threads, "round": c.round,
                          "error": c.error} for c in cases if c.status != "ok"],
        })
        return
    say((f"run {row.id}", "bold"), f" {row.shown_status()}; started {_when(row.started)}, finished "
        f"{_when(row.finished)} on {row.host} (kpmobile {row.kpmobile_version})")
    for fp in fps:
        d = row.plan.devices.get(fp, PlanDevice())
        info = known.get(fp, {})
        say(f"  device {row.plan.device_label(fp)}: fingerprint {fp}, serial "
            f"{d.text('serial') or info.get('serial')}, soc {info.get('soc') or d.soc}, "
            f"abi {info.get('abi') or d.abi}")
    for table in tables:
        console.print(to_rich(table))
    for s in scaling:
        if s.warning:
            warn(f"{s.label} {s.model}: {s.warning}")


COMPARE_HELP = "\n\n".join((
    "Compare run B against run A cell by cell: the ratio B/A, its interval, a test and a verdict.",
    "A cell's samples: where the runner printed per-iteration times (kpmobile's own runners), every timed"
    " iteration of its rounds, and a verdict needs 2 rounds a side (one round's iterations share one moment of"
    " load); else (benchmark_bin) its rounds, each round's avg_ms, and a verdict needs 4 rounds a side.",
    "Iterations are weighed by how far rounds disagree: k iterations a round count as k / (1 + (k - 1) * ICC)"
    " samples, ICC being the share of their variance that lies between rounds (pooled over every cell of both"
    " runs, or the cell's own when larger). Rounds that disagree as much as they scatter within make 30"
    " iterations from 3 rounds worth about 3 samples: 'insufficient', not a guess.",
    "Verdicts. slower / faster: the two-sided Mann-Whitney U test gives p < 0.05 and the Hodges-Lehmann"
    " ratio B/A (the median of all pairwise ratios) is beyond 1 +- --threshold. same: not significant, or"
    " significant but within --threshold. insufficient (need >= N rounds): at these sample sizes even"
    " samples that do not overlap could not reach p < 0.05 (the exact test's smallest p is 2 / C(m+n, m)),"
    " so no verdict is given; rerun both runs with --rounds N.",
    "Exit codes with --fail-above PCT: 1 when a cell is 'slower' by more than PCT %; else 2 when a cell in"
    " both runs is 'insufficient'; else 0. Without --fail-above: 0.",
))


@app.command(help=COMPARE_HELP)
def compare(
    run_a: str = typer.Argument(..., help="Baseline run id."),
    run_b: str = typer.Argument(..., help="Run id to compare against the baseline."),
    fail_above: float = typer.Option(None, "--fail-above", min=0,
                                     help="Exit 1 when a cell is 'slower' by more than PCT %; else 2 when a cell"
                                          " is 'insufficient'."),
    force: bool = typer.Option(False, "--force", help="Compare devices whose fingerprints differ."),
    threshold: float = typer.Option(5.0, "--threshold", min=0, help="Changes below PCT % are 'same'."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    from kpmobile.report.compare import compare_runs, comparison_table, insufficient, regressions
    from kpmobile.report.table import to_rich

    try:
        store = _store(db)
        a, b = store.run(run_a), store.run(run_b)
        result = compare_runs(a, store.cases(a.id), b, store.cases(b.id), force=force, threshold=threshold / 100)
    except KpError as exc:
        fail_on(exc)
    bad = regressions(result, fail_above) if fail_above is not None else []
    unsure = insufficient(result) if fail_above is not None else []
    if as_json:
        data = result.to_json()
        data["fail_above"] = fail_above
        data["regressions"] = [c.to_json() for c in bad]
        data["insufficient"] = len(unsure)
        emit_json(data)
    else:
        console.print(to_rich(comparison_table(result, {**a.plan.models, **b.plan.models})))
    _gate(bad, unsure, fail_above)


def _gate(bad: list[CellComparison], unsure: list[CellComparison], fail_above: float | None) -> None:
    """Exit 1 on regressions beyond --fail-above, else 2 when some cell cannot be judged."""
    if bad:
        worst = max(bad, key=lambda c: c.change_pct or 0)
        warn(f"{len(bad)} cell(s) slower by more than {fail_above:g}% "
             f"(worst {worst.setting.label()} on {worst.label}: {worst.change_pct:+.1f}%)", label="regression:")
        raise typer.Exit(1)
    if unsure:
        need = max(c.need_rounds or 0 for c in unsure)
        warn(f"{len(unsure)} cell(s) have too few rounds for a verdict; rerun both with --rounds {need} or more",
             label="insufficient:")
        raise typer.Exit(2)


@app.command("export")
def export_cmd(
    run: str = typer.Argument(..., help="Run id."),
    out: Path = typer.Option(..., "--out", "-o", help="JSON file to write."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write a run, its devices, its cases with raw logs and its op profiles to a versioned JSON file."""
    from kpmobile.store.exchange import SCHEMA, VERSION, export_run, write_export

    try:
        data = export_run(_store(db), run)
        path = write_export(data, out)
    except KpError as exc:
        fail_on(exc)
    summary = {"run_id": data["run"]["id"], "path": str(path), "cases": len(data["cases"]),
               "devices": len(data["devices"]), "op_profiles": len(data["op_profiles"]), "schema": SCHEMA,
               "version": VERSION}
    _done(as_json, summary, f"exported run {summary['run_id']}: {summary['cases']} cases, {summary['devices']} "
                            f"device(s), {summary['op_profiles']} op profile(s) -> {path} ({SCHEMA} v{VERSION})")


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="File written by `kpmobile runs export`."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print what was imported as JSON."),
) -> None:
    """Import an exported run into the store, keeping its run id (an identical copy is a no-op)."""
    from kpmobile.store.exchange import import_run, read_export

    try:
        data = read_export(file)  # checked before the store is opened for writing
    except KpError as exc:
        fail_on(exc)
    store, result = _write_to_store(db, lambda store: import_run(store, data))
    _done(as_json, {"run_id": result.run_id, "cases": result.cases, "devices_added": result.devices_added,
                    "already_present": result.already_present, "db": str(store.path)},
          f"run {result.run_id} is already in {store.path}, identical: nothing imported" if result.already_present
          else f"imported run {result.run_id}: {result.cases} cases, {result.devices_added} new device(s)"
               f" into {store.path}")


@app.command("delete")
def delete_cmd(
    run: str = typer.Argument(..., help="Run id."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print what was deleted as JSON."),
) -> None:
    """Delete a run and all stored of it: cases, samples, op profiles (a run still being measured is refused)."""
    from kpmobile.store.runid import check_run_id

    store, removed = _write_to_store(db, lambda store: store.delete_run(check_run_id(run)))
    _done(as_json, {"run_id": run, "cases_deleted": removed, "db": str(store.path)},
          f"deleted run {run} ({removed} case rows) from {store.path}")


def _write_to_store(db: Path | None, work: Callable[[Store], T]) -> tuple[Store, T]:
    """Give the store opened for writing and what `work` did with it; a KpError is the one error line."""
    try:
        store = _store(db, write=True)
        return store, work(store)
    except KpError as exc:
        fail_on(exc)


def _done(as_json: bool, data: dict[str, Any], line: str) -> None:
    """Print what a command did: `data` with --json, else the one line."""
    if as_json:
        emit_json(data)
    else:
        say(line)
