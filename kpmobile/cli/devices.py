"""`kpmobile devices`: list every device of every adb server."""

from __future__ import annotations

import typer

from kpmobile.cli.output import console, emit_json, fail_on, literal, warn
from kpmobile.errors import KpError


def register(app: typer.Typer) -> None:
    """Add the devices command to `app`."""

    @app.command()
    def devices(
        adb_server: list[str] = typer.Option(None, "--adb-server", help="adb server HOST:PORT (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List attached phones with their SoC, ABI and matched profile."""
        from kpmobile.devices.android import list_devices

        try:
            found = list_devices(list(adb_server or []))
        except KpError as exc:
            fail_on(exc)
        for d in found:
            for warning in d.warnings:
                warn(warning)
        if as_json:
            emit_json([d.to_json() for d in found])
            return
        from rich.table import Table

        table = Table(title="Devices")
        for col in ("serial", "state", "brand", "model", "abi", "android", "soc", "profile", "big cores", "server"):
            table.add_column(col)
        for d in found:
            cells = (d.serial, d.state, d.brand or "", d.model or "", d.abi or "", d.android_version or "",
                     d.soc or "", d.profile or "", ",".join(map(str, d.big_cores)), d.server)
            table.add_row(*map(literal, cells))
        console.print(table)
