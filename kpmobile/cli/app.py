"""The `kpmobile` command: sub-commands are registered from one module each."""

from __future__ import annotations

import typer

from kpmobile.cli import bench, devices, misc, models, quickparams, report, runs
from kpmobile.cli.output import fail_on
from kpmobile.errors import KpError

quickparams.install()  # plain option values without importing pydantic

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark keypoint and detection models on Android phones and servers.")


@app.callback()
def _startup() -> None:
    """Refuse an environment that would silently give wrong numbers."""
    from kpmobile.envcheck import check_numpy

    try:
        check_numpy()
    except KpError as exc:
        fail_on(exc)


bench.register(app)
devices.register(app)
misc.register(app)
app.add_typer(models.app, name="models")
app.add_typer(report.app, name="report")
app.add_typer(runs.app, name="runs")


def main() -> None:
    """Run the CLI."""
    app()
