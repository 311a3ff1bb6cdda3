"""The `kpmobile` command: sub-commands are registered from one module each."""

from __future__ import annotations

import typer

try:  # typer >= 0.2x carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on plain click
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[no-redef,assignment]

from kpmobile.cli import bench, devices, misc, models, quickparams, report, runs
from kpmobile.cli.output import fail, fail_on
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
    """Run the CLI; usage errors (unknown flag, a value of the wrong kind) print one `error:` line too."""
    import sys

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        sys.exit(2)
    except UsageError as exc:
        where = f"`{exc.ctx.command_path} --help`" if exc.ctx is not None else "`kpmobile --help`"
        try:
            fail(exc.format_message().rstrip("."), f"see {where}", code=exc.exit_code)
        except typer.Exit as done:
            sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
