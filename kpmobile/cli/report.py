"""`kpmobile report ...`: print tables again from the store."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from kpmobile.cli.output import console, emit_json, fail_on
from kpmobile.errors import KpError

app = typer.Typer(no_args_is_help=True, help="Print tables from the store.")


class Format(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


def _print(table: object, fmt: Format) -> None:
    from kpmobile.report.table import Table, to_csv, to_markdown, to_rich

    assert isinstance(table, Table)
    if fmt is Format.json:
        emit_json({"title": table.title, "header": table.header, "rows": table.rows, "cells": table.data})
    elif fmt is Format.md:
        print(to_markdown(table), end="")
    elif fmt is Format.csv:
        print(to_csv(table), end="")
    else:
        console.print(to_rich(table))


@app.command()
def mobile(
    run: str = typer.Option(None, "--run", help="Run id (default: the latest)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, md, csv or json."),
    db: Path = typer.Option(None, "--db", help="SQLite store."),
) -> None:
    """Print the mobile table of a run."""
    from kpmobile.paths import default_db
    from kpmobile.report.mobile import mobile_table
    from kpmobile.store import Store

    try:
        store = Store(db or default_db())
        row = store.run(run)
        table = mobile_table(row.plan, store.cases(row.id))
    except KpError as exc:
        fail_on(exc)
    _print(table, fmt)
