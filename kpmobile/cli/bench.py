"""`kpmobile bench`: parse the sweep's options and call the sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kpmobile.cli.output import console, emit_json, fail, fail_on, say
from kpmobile.errors import KpError

if TYPE_CHECKING:
    from kpmobile.report.table import Table


def _split(values: list[str] | None) -> list[str] | None:
    """Give a comma list's items; None when the flag was not given ([] when it was given empty)."""
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _ints(values: list[str] | None, flag: str) -> list[int] | None:
    items = _split(values)
    if items is None:
        return None
    try:
        return [int(v) for v in items]
    except ValueError:
        fail(f"{flag} takes whole numbers separated by commas (got {ascii(','.join(values or []))})",
             f"e.g. {flag} 1,4")


def _tables(db: Path, run_id: str) -> list[Table]:
    """Give the tables of a finished sweep's run, read back from its store."""
    from kpmobile.report.run import sweep_tables
    from kpmobile.store import Store

    store = Store(db, readonly=True)
    try:
        run = store.run(run_id)
        return sweep_tables(run.plan, store.cases(run.id))
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    """Add the bench command to `app`."""

    @app.command()
    def bench(
        config: Path = typer.Option(None, "--config", help="Sweep file (TOML); flags override it."),
        models: list[str] = typer.Option(None, "--models", "-m", help="Catalogue names or model dirs (comma list)."),
        threads: list[str] = typer.Option(None, "--threads", "-t", help="Thread counts, e.g. 1,4."),
        device: list[str] = typer.Option(None, "--device", "-d", help="Serial, or 'host' (repeatable); default all."),
        adb_server: list[str] = typer.Option(None, "--adb-server", help="adb server HOST:PORT (repeatable)."),
        no_virtual: bool = typer.Option(None, "--no-virtual", help="Never start a virtual phone."),
        runner: Path = typer.Option(None, "--runner", help="Paddle Lite benchmark_bin for ARM phones."),
        warmup: int = typer.Option(None, help="Warm-up runs per case (default 10)."),
        repeats: int = typer.Option(None, help="Timed runs per case (default 30)."),
        rounds: int = typer.Option(None, help="Separate runner invocations per cell, interleaved (default 3)."),
        power_mode: int = typer.Option(None, help="0 big cores, 1 little, 2 all, 3 no bind."),
        cooldown: float = typer.Option(None, help="Seconds to rest before each case."),
        thermal_wait: float = typer.Option(None, "--thermal-wait",
                                           help="Longest wait (s) before a case for the phone to cool below its"
                                                " profile's thermal limit (default 120; 0: never wait)."),
        backend: list[str] = typer.Option(None, "--backend", help="Host backends, e.g. lite-x86,paddle-mkldnn."),
        batch: list[str] = typer.Option(None, "--batch", help="Batch sizes for host backends, e.g. 1,10."),
        pipeline: list[str] = typer.Option(None, "--pipeline", help="Detector+pose pipeline, e.g. a+b."),
        persons: list[str] = typer.Option(None, "--persons", help="Persons per frame for pipelines, e.g. 1,6."),
        pipeline_runner: Path = typer.Option(None, "--pipeline-runner", help="PaddleDetection lite main (ARM)."),
        out: Path = typer.Option(None, "--out", help="Folder for pulled logs (default kpmobile-out)."),
        db: Path = typer.Option(None, "--db", help="SQLite store (default in $KPMOBILE_HOME)."),
        resume: str = typer.Option(None, "--resume", help="Run id whose missing cases to run."),
        case_timeout: float = typer.Option(None, help="Seconds before a hung runner is killed (default 600)."),
        allow_oversubscribe: bool = typer.Option(None, "--allow-oversubscribe",
                                                 help="Allow more threads than the phone has cores."),
        no_wait: bool = typer.Option(None, "--no-wait",
                                     help="Refuse, naming the holder, when a phone (or the host) is leased."),
        memory: bool = typer.Option(None, "--memory",
                                    help="One extra run per cell with --enable_memory_profile: init/peak MB."),
        virtual: str = typer.Option(None, "--virtual",
                                    help="Use only a virtual phone: x86, or arm (kirin980 running the real "
                                         "benchmark_bin under qemu; timings emulated)."),
        quick: bool = typer.Option(False, "--quick", help="One round, for a dry look: no spread, cells say"
                                                           " '1 round' and runs compare says 'insufficient'."),
        energy: bool = typer.Option(None, "--energy",
                                    help="Sample the battery (~10 Hz) around each case, after an idle baseline:"
                                         " mean and idle W, mJ per inference (`report energy`)."),
        energy_idle: float = typer.Option(None, "--energy-idle", min=0.5, help="Seconds of idle baseline (default 3)."),
        op_profile: bool = typer.Option(None, "--op-profile",
                                        help="One extra invocation per cell with a LITE_WITH_PROFILE benchmark_bin"
                                             " (--op-runner, else --runner): time per operator (`report ops`)."
                                             " ARM phones only: the x86 runner's paddlelite Python API exposes no"
                                             " per-operator times."),
        op_runner: Path = typer.Option(None, "--op-runner", help="The profiling benchmark_bin for --op-profile."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome and table as JSON."),
    ) -> None:
        """Convert, push, run and store every case, then print the mobile (or server) table."""
        from kpmobile.cli.progress import RichProgress
        from kpmobile.cli.signals import stop_on_signals
        from kpmobile.report.table import to_json, to_rich
        from kpmobile.sweep import run_sweep
        from kpmobile.sweep.config import load_options

        if quick and rounds not in (None, 1):
            fail("--quick and --rounds disagree", "--quick means --rounds 1; give one of them")
        rounds = 1 if quick else rounds
        overrides = {
            "models": _split(models), "threads": _ints(threads, "--threads"),
            "devices": _split(device), "servers": _split(adb_server), "no_virtual": no_virtual,
            "runner": runner, "warmup": warmup, "repeats": repeats, "rounds": rounds, "power_mode": power_mode,
            "cooldown_s": cooldown, "thermal_wait_s": thermal_wait,
            "backends": _split(backend), "batches": _ints(batch, "--batch"),
            "pipelines": _split(pipeline), "persons": _ints(persons, "--persons"),
            "pipeline_runner": pipeline_runner, "out_dir": out, "db": db, "resume": resume,
            "case_timeout_s": case_timeout, "memory": memory, "virtual": virtual,
            "energy": energy, "energy_idle_s": energy_idle,
            "op_profile": op_profile or (True if op_runner else None), "op_runner": op_runner,
            "allow_oversubscribe": allow_oversubscribe, "no_wait": no_wait,
        }
        try:
            opts = load_options(config, overrides)
            overrides["config"] = config
            if opts.on_host and (opts.op_profile or opts.energy):
                fail("--op-profile and --energy measure phones; the host's backends have neither per-operator"
                     " times (paddlelite's Python API has no profiler) nor a battery", "drop them for --device host")
            opts.command = "kpmobile bench " + json.dumps({k: str(v) for k, v in overrides.items() if v is not None})
            with stop_on_signals(), RichProgress(enabled=not as_json) as progress:
                result = run_sweep(opts, progress)
        except KpError as exc:
            fail_on(exc)
        tables = _tables(result.outcome.db, result.run_id)
        if as_json:
            data = result.to_json()
            data["tables"] = [to_json(t) for t in tables]
            if tables:
                data["table"] = data["tables"][0]
            emit_json(data)
        else:
            for line in result.summary_lines():
                say(line)  # one line each, for logs and greps
            for table in tables:
                console.print(to_rich(table))
        if result.failed:
            raise typer.Exit(1)
