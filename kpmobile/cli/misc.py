"""`kpmobile doctor | convert | parse | virtual-phone serve`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kpmobile.cli.output import console, emit_json, fail_on, literal, say
from kpmobile.errors import KpError

if TYPE_CHECKING:
    from rich.table import Table

    from kpmobile.records import RunRecord


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
        mark = ("ok  ", "green") if c.ok else ("--  ", "yellow")
        say(mark, (c.name, "bold"), f": {c.detail}")


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
        say(f"{conv.path} ({'cached' if conv.cached else 'converted'})")


def parse(
    files: list[str] = typer.Argument(..., help="Runner logs, result files or a profiling runner's stderr;"
                                                " '-' reads standard input."),
    top: int = typer.Option(10, "--top", min=1, help="Kernels shown per profiler summary."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Parse runner logs into records (UTF-8 or UTF-16 text, CRLF, logs pasted into Markdown); the stderr of a
    LITE_WITH_PROFILE benchmark_bin gives its time per operator."""
    records: list[tuple[str, RunRecord]] = []
    profiles: list[tuple[str, dict[str, Any]]] = []
    for name in files:
        try:
            runs, profile = _parse_one(name)
        except KpError as exc:
            fail_on(exc)
        records += [(name, r) for r in runs]
        profiles += [(name, profile)] if profile else []
    if as_json:
        emit_json([{"file": p, **r.to_json()} for p, r in records]
                  + [{"file": p, "format": "paddle_lite_profile", **prof} for p, prof in profiles])
        return
    if records or not profiles:
        console.print(_runs_table(records))
    for name, prof in profiles:
        console.print(_profile_table(name, prof, top))


def _parse_one(name: str) -> tuple[list[RunRecord], dict[str, Any] | None]:
    """Give a file's runs and its profiler summary as JSON (None without one); a profile alone has no runs."""
    from kpmobile.runners.opprofile import has_profile, parse_profile, per_kernel
    from kpmobile.runners.parsers import parse_input, parse_log
    from kpmobile.textfile import read_text

    if name == "-" or not Path(name).is_file():
        return parse_input(name), None
    text = read_text(Path(name), f"log file {name}")
    if not has_profile(text):
        return parse_input(name), None
    parsed = parse_profile(text)
    source, kernels = per_kernel(parsed)
    profile = {"source": source, "kernels": [k.to_json() for k in kernels], **parsed.to_json()}
    return (parse_log(text) if "Perf Info" in text else []), profile


def _profile_table(name: str, profile: dict[str, Any], top: int) -> Table:
    """Give the top kernels of a parsed profiler summary (names printed as plain text)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"Operators: {Path(name).name}"), caption=profile["source"])
    for col in ("#", "operator", "kernel", "function", "calls", "avg ms", "share"):
        table.add_column(col, justify="left" if col in ("operator", "kernel", "function") else "right")
    for i, k in enumerate(profile["kernels"][:top]):
        table.add_row(str(i + 1), *(Text(str(k[f])) for f in ("op_type", "kernel", "func")), str(k["calls"]),
                      f"{k['avg_ms']:.3f}", f"{k['share']:.1f} %")
    return table


def _runs_table(records: list[tuple[str, RunRecord]]) -> Table:
    """Give the table of parsed runs (file names and model names printed as plain text)."""
    from rich.table import Table

    table = Table(title="Runs")
    for col in ("file", "format", "abi", "model", "threads", "avg ms", "min ms", "max ms"):
        table.add_column(col)
    for p, r in records:
        nums = (f"{v:.3f}" if v is not None else "" for v in (r.avg_ms, r.min_ms, r.max_ms))
        cells = (Path(p).name if p != "-" else "-", r.format, r.abi or "", r.model or "", str(r.threads or ""), *nums)
        table.add_row(*map(literal, cells))
    return table


def register(app: typer.Typer) -> None:
    """Add doctor, convert, parse and virtual-phone to `app`."""
    app.add_typer(phone_app, name="virtual-phone")
    for command in (doctor, convert, parse):
        app.command()(command)
