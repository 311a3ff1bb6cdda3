"""What kpmobile's pushed runners share: exit codes, the one-line failure, gflags-style flags, the numpy guard, `main`.

Pure stdlib, no kpmobile imports: `lite_runner` and `pipeline_runner` import it in the checkout,
and each pushed runner carries its source spliced in (see `kpmobile.runners.splice`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILED = 1  # the environment cannot measure (numpy 2, result file not writable, ...)
EXIT_USAGE = 2  # bad flags, or flags that do not fit the model
EXIT_MODEL = 3  # the model cannot be run here: missing, corrupt, wrong target, paddlelite crash
EXIT_INTERRUPTED = 130

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


class RunnerFailure(Exception):
    """A failure reported as one line on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _usage_error(message: str) -> RunnerFailure:
    """Give the failure for a bad command line (EXIT_USAGE)."""
    return RunnerFailure(message, EXIT_USAGE)


def parse_gflags(argv: list[str], types: dict[str, type], unsupported: dict[str, str] | None = None,
                 unsupported_hint: str = "") -> dict[str, Any]:
    """Give {name: value} of a gflags command line (--name=value, --name value, -name=value, --bool,
    --nobool); RunnerFailure(EXIT_USAGE) on an unknown, unsupported or malformed flag."""
    values: dict[str, Any] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg in ("-", "--"):
            raise _usage_error(f"unexpected argument {arg!r}: flags are --name=value")
        name, eq, value = arg.lstrip("-").partition("=")
        if unsupported and name in unsupported:
            raise _usage_error(f"--{name} is not supported: benchmark_bin {unsupported[name]}; {unsupported_hint}")
        if name.startswith("no") and types.get(name[2:]) is bool and not eq:
            values[name[2:]] = False
            continue
        if name not in types:
            raise _usage_error(f"unknown command line flag '{name}'")
        if types[name] is bool:
            values[name] = _bool_flag(name, value if eq else None)
            continue
        if not eq:
            if not args:
                raise _usage_error(f"flag '--{name}' is missing its argument")
            value = args.pop(0)
        values[name] = _typed_flag(name, value, types[name])
    return values


def _bool_flag(name: str, value: str | None) -> bool:
    """Give a boolean flag's value (`--name` alone is true)."""
    if value is None:
        return True
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _usage_error(f"--{name}={value}: expected true or false")


def _typed_flag(name: str, value: str, kind: type) -> Any:
    """Give `value` as `kind`; RunnerFailure(EXIT_USAGE) when it is not one."""
    try:
        return kind(value)
    except ValueError:
        raise _usage_error(f"--{name}={value}: expected {kind.__name__}") from None


def import_numpy() -> Any:
    """Give numpy, or RunnerFailure(EXIT_FAILED) for numpy 2 (paddlelite's Tensor.from_numpy writes zeros)."""
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        raise RunnerFailure(f"numpy {np.__version__} with paddlelite: Tensor.from_numpy writes zeros; "
                            "install numpy<2", EXIT_FAILED)
    return np


def run_main(argv: list[str] | None, prog: str, banner: str, usage: str, body: Callable[[list[str]], int]) -> int:
    """Give the exit code of `body(args)`: --help prints `usage`, --version `banner`; a RunnerFailure
    or Ctrl-C becomes one `prog: ...` line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if any(a.lstrip("-") in ("help", "h", "helpshort") for a in args):
        print(usage)
        return EXIT_OK
    if any(a.lstrip("-") == "version" for a in args):
        print(banner)
        return EXIT_OK
    try:
        return body(args)
    except RunnerFailure as exc:
        sys.stderr.write(f"{prog}: {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return EXIT_INTERRUPTED


def exit_now(code: int) -> NoReturn:
    """End the process with `code` once stdout and stderr are flushed, without the interpreter's
    teardown: in the runners numpy's and the modules' took 10-30 ms after the process's own wall was
    printed, on every case, and a sweep counted it as its own overhead (the result file is closed by
    then); the CLI ends this way too. A stream that cannot be flushed (a closed pipe) is passed over."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


# kpmobile's parser reads this last line of a result file (not of stdout) as the run's samples
SAMPLES_PREFIX = "per-iteration(ms): "


def format_samples(samples_ms: Sequence[float]) -> str:
    """Give the result file's line of every timed iteration's time, or "" when there is none."""
    return SAMPLES_PREFIX + " ".join(f"{v:.3f}" for v in samples_ms) + "\n" if samples_ms else ""


SLOWDOWN = float(os.environ.get("KPMOBILE_SLOWDOWN_PCT") or 0) / 100  # only the virtual phone's --slowdown sets it


def paced(start: float, slowdown: float | None = None) -> None:
    """Give nothing once (1 + slowdown) times the time since `start` has passed: the test-only slowdown
    of the virtual phone (devices/virtual_phone/pacing.py) stretches each timed iteration so (None: the
    module's SLOWDOWN, read at each call). It spins: a sleep would let other processes cool this one's
    caches and slow the next iteration further."""
    if slowdown is None:
        slowdown = SLOWDOWN
    if slowdown <= 0:
        return
    deadline = start + (time.perf_counter() - start) * (1 + slowdown)
    while time.perf_counter() < deadline:
        pass
