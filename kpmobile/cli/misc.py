"""`kpmobile doctor | convert | parse | virtual-phone serve`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from kpmobile.cli.output import console, emit_json, fail, fail_on, literal, say
from kpmobile.errors import KpError


class Target(str, Enum):
    arm = "arm"
    x86 = "x86"


class Auth(str, Enum):
    none = "none"
    accept = "accept"
    deny = "deny"


phone_app = typer.Typer(no_args_is_help=True, help="A virtual phone serving the device side of adb.")


@phone_app.command()
def serve(
    port: int = typer.Option(..., "--port", min=1, max=65535, help="TCP port on 127.0.0.1."),
    profile: str = typer.Option("virtual", "--profile", help="Device profile name."),
    getprop: Path = typer.Option(None, "--getprop", help="A real `adb shell getprop` dump."),
    auth: Auth = typer.Option(Auth.none, "--auth", help="none, accept or deny."),
    root: Path = typer.Option(None, "--root", help="Sandbox folder standing in for the phone's storage."),
    cpuinfo: Path = typer.Option(None, "--cpuinfo", help="A /proc/cpuinfo to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Only 127.0.0.1 is allowed."),
) -> None:
    """Serve a virtual phone until interrupted."""
    from kpmobile.devices.virtual_phone.server import serve as serve_phone

    try:
        serve_phone(port=port, profile=profile, getprop=getprop, auth=auth.value, root=root, cpuinfo=cpuinfo,
                    host=host)
    except KpError as exc:
        fail_on(exc)


def register(app: typer.Typer) -> None:
    """Add doctor, convert, parse and virtual-phone to `app`."""
    app.add_typer(phone_app, name="virtual-phone")

    @app.command()
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

    @app.command()
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

    @app.command()
    def parse(
        files: list[Path] = typer.Argument(..., help="Runner logs or result files."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Parse runner logs into records."""
        from rich.table import Table

        from kpmobile.runners.parsers import parse_log

        records = []
        for path in files:
            if not path.is_file():
                fail(f"no log file {path}", "give the path of a saved runner log")
            try:
                records += [(path, r) for r in parse_log(path.read_text(errors="replace"))]
            except KpError as exc:
                fail(f"{path}: {exc.one_line()}")
        if as_json:
            emit_json([{"file": str(p), **r.to_json()} for p, r in records])
            return
        table = Table(title="Runs")
        for col in ("file", "format", "model", "threads", "avg ms", "min ms", "max ms"):
            table.add_column(col)
        for p, r in records:
            nums = (f"{v:.3f}" if v is not None else "" for v in (r.avg_ms, r.min_ms, r.max_ms))
            table.add_row(*map(literal, (p.name, r.format, r.model or "", str(r.threads or ""), *nums)))
        console.print(table)
