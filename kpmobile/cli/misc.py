"""`kpmobile doctor | convert | parse | virtual-phone serve`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from kpmobile.cli.output import console, emit_json, fail, fail_on
from kpmobile.errors import KpError


class Target(str, Enum):
    arm = "arm"
    x86 = "x86"


phone_app = typer.Typer(no_args_is_help=True, help="A virtual phone serving the device side of adb.")


@phone_app.command(add_help_option=False,
                   context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(ctx: typer.Context) -> None:
    """Serve a virtual phone until interrupted (--help lists the flags)."""
    from kpmobile.devices.virtual_phone.command import main

    # One parser for both entries: the flags are those of `python -m kpmobile.devices.virtual_phone serve`.
    raise typer.Exit(main(["serve", *ctx.args], prog="kpmobile virtual-phone"))


def doctor(
    adb_server: list[str] = typer.Option(None, "--adb-server", help="adb server HOST:PORT (repeatable)."),
    runner: Path = typer.Option(None, "--runner", help="benchmark_bin for ARM phones."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Report Python, paddlelite, numpy, adb, devices and runners."""
    from kpmobile.doctor import checks_json, run_checks

    checks = run_checks(list(adb_server or []), runner)
    if as_json:
        emit_json(checks_json(checks))
        return
    for c in checks:
        mark = "[green]ok[/]  " if c.ok else "[yellow]--[/]  "
        console.print(f"{mark}[bold]{c.name}[/]: {c.detail}", highlight=False)


def convert(
    model: str = typer.Argument(..., help="Catalogue name or exported model directory."),
    target: Target = typer.Option(Target.arm, "--target", help="arm or x86."),
    fp16: bool = typer.Option(False, "--fp16", help="Convert with fp16 kernels."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Convert a model to a Paddle Lite .nb (cached by content hash)."""
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.convert import convert_nb

    try:
        conv = convert_nb(ensure_model(resolve(model)), target.value, fp16=fp16)
    except KpError as exc:
        fail_on(exc)
    if as_json:
        emit_json({"path": str(conv.path), "key": conv.key, "cached": conv.cached})
    else:
        console.print(f"{conv.path} ({'cached' if conv.cached else 'converted'})", highlight=False)


def parse(
    files: list[Path] = typer.Argument(..., help="Runner logs, result files, or a profiling runner's stderr."),
    top: int = typer.Option(10, "--top", min=1, help="Kernels shown per profiler summary."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Parse runner logs into records; a LITE_WITH_PROFILE runner's stderr gives its time per operator."""
    parsed = [(path, *_parse_file(path)) for path in files]
    if as_json:
        emit_json([{"file": str(p), **r.to_json()} for p, recs, _ in parsed for r in recs]
                  + [{"file": str(p), "format": "paddle_lite_profile", **prof} for p, _, prof in parsed if prof])
        return
    _print_runs([(p, r) for p, recs, _ in parsed for r in recs])
    for p, _, prof in parsed:
        if prof:
            _print_profile(p, prof, top)


def _print_runs(records: list[tuple[Path, Any]]) -> None:
    from rich.table import Table

    if not records:
        return
    table = Table(title="Runs")
    for col in ("file", "format", "model", "threads", "avg ms", "min ms", "max ms"):
        table.add_column(col)
    for p, r in records:
        table.add_row(p.name, r.format, r.model or "", str(r.threads or ""),
                      *(f"{v:.3f}" if v is not None else "" for v in (r.avg_ms, r.min_ms, r.max_ms)))
    console.print(table)


def _parse_file(path: Path) -> tuple[list[Any], dict[str, Any] | None]:
    """Give a file's parsed runs and its profiler summary as JSON (None without one); exit on bad input."""
    from kpmobile.runners.opprofile import has_profile, parse_profile, per_kernel
    from kpmobile.runners.parsers import parse_log

    if not path.is_file():
        fail(f"no log file {path}", "give the path of a saved runner log")
    text = path.read_text(errors="replace")
    profile: dict[str, Any] | None = None
    try:
        if has_profile(text):
            parsed = parse_profile(text)
            source, kernels = per_kernel(parsed)
            profile = {"source": source, "kernels": [k.to_json() for k in kernels], **parsed.to_json()}
        return (parse_log(text) if profile is None or "Perf Info" in text else []), profile
    except KpError as exc:
        fail(f"{path}: {exc.one_line()}")


def _print_profile(path: Path, profile: dict[str, Any], top: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"Operators: {path.name}"), caption=profile["source"])
    for col in ("#", "operator", "kernel", "function", "calls", "avg ms", "share"):
        table.add_column(col, justify="left" if col in ("operator", "kernel", "function") else "right")
    for i, k in enumerate(profile["kernels"][:top]):
        table.add_row(str(i + 1), *(escape(k[f]) for f in ("op_type", "kernel", "func")), str(k["calls"]),
                      f"{k['avg_ms']:.3f}", f"{k['share']:.1f} %")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add doctor, convert, parse and virtual-phone to `app`."""
    app.add_typer(phone_app, name="virtual-phone")
    for command in (doctor, convert, parse):
        app.command()(command)
