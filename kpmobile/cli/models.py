"""`kpmobile models ...`: the model catalogue."""

from __future__ import annotations

import typer

from kpmobile.cli.output import console, emit_json, fail_on, literal, say
from kpmobile.errors import KpError

app = typer.Typer(no_args_is_help=True, help="The model catalogue.")


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the catalogue's models."""
    from rich.table import Table

    from kpmobile.zoo.catalogue import list_models

    specs = list_models()
    if as_json:
        emit_json([{"name": s.name, "display": s.display, "family": s.family, "task": s.task,
                    "input_shape": list(s.input_shape), "published": s.published} for s in specs])
        return
    table = Table(title="Models")
    for col in ("name", "display", "task", "input", "published"):
        table.add_column(col)
    for s in specs:
        table.add_row(*map(literal, (s.name, s.display, s.task, "x".join(map(str, s.input_shape)),
                                     ", ".join(f"{k}={v}" for k, v in s.published.items()))))
    console.print(table)


@app.command()
def info(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Give a model's params, FLOPs, input shape and outputs."""
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.complexity import model_info

    try:
        data = model_info(resolve(name))
    except KpError as exc:
        fail_on(exc)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        say((key, "bold"), f": {value}")
