"""The `kpmobile` command: sub-commands are registered from one module each."""

from __future__ import annotations

from typing import NoReturn

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
    """Run the CLI as the process's entry point, and end the process with the command's exit code;
    usage errors (unknown flag, a value of the wrong kind) print one `error:` line too."""
    end_process(_exit_code())


def _exit_code() -> int:
    """Give the exit code of running the command line (a bug's traceback still propagates)."""
    import sys

    try:
        code = app(standalone_mode=False)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # as the interpreter prints sys.exit("text")
        return 1
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        return 2
    except UsageError as exc:
        where = f"`{exc.ctx.command_path} --help`" if exc.ctx is not None else "`kpmobile --help`"
        try:
            fail(exc.format_message().rstrip("."), f"see {where}", code=exc.exit_code)
        except typer.Exit as done:
            return done.exit_code
    except typer.Abort:
        return 130
    return code if isinstance(code, int) else 0


def end_process(code: int) -> NoReturn:
    """End the process with `code` as the interpreter would, less its teardown: the other threads are
    joined, the atexit handlers run and stdout and stderr are flushed, but the modules are not freed
    one by one, which took about 30 ms of every command (255 -> 224 ms for `devices --json`)."""
    import atexit
    import threading

    from kpmobile.runners.runner_common import exit_now

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    exit_now(code)
