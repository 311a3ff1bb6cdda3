"""Run a zoo worker module (`python -m kpmobile.zoo.<worker>`) in a subprocess and read its result.

paddle, ppdet and paddlelite are imported only in these subprocesses: importing ppdet takes
seconds, paddle and paddlelite should not share a process, and Lite aborts the whole process
on some bad inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kpmobile.errors import ConversionError, KpError
from kpmobile.paths import cache_dir

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


def worker_env() -> dict[str, str]:
    """Give the environment for a worker: kpmobile importable, paddle's logging quiet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("GLOG_minloglevel", "2")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def log_dir() -> Path:
    """Give the folder keeping the output of the last worker run per job."""
    path = cache_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_worker(module: str, args: list[str], *, what: str, log_name: str, timeout: float,
               error: type[KpError] = ConversionError) -> dict[str, Any]:
    """Run `python -m kpmobile.zoo.<module> ARGS --result FILE` and give the JSON it wrote.

    A failure raises `error` with a one-line message naming `what` failed and a hint
    pointing at the kept log.
    """
    log = log_dir() / f"{log_name}.log"
    fd, result_name = tempfile.mkstemp(prefix=".result-", suffix=".json", dir=log_dir())
    os.close(fd)
    result = Path(result_name)
    cmd = [sys.executable, "-m", f"kpmobile.zoo.{module}", *args, "--result", str(result)]
    started = time.monotonic()
    try:
        with log.open("w") as out:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            try:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=worker_env(),
                                      timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise error(f"{what} timed out after {timeout:.0f} s", f"see {log}") from None
        data: dict[str, Any] = {}
        if result.stat().st_size:
            try:
                data = json.loads(result.read_text())
            except ValueError:
                data = {}
    finally:
        result.unlink(missing_ok=True)
    if proc.returncode != 0 or "error" in data or not data:
        reason = data.get("error") or _last_line(log) or f"exit status {proc.returncode}"
        if proc.returncode < 0 or proc.returncode > 128:
            reason = f"{reason} (killed by signal {abs(proc.returncode) % 128})"
        raise error(f"{what} failed: {reason}", data.get("hint") or f"see {log}")
    data.setdefault("seconds", round(time.monotonic() - started, 3))
    return data


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    # Lite and paddle2onnx say why in an "[ERROR]"/"[F ...]" line before paddle's abort banner.
    said = [ln for ln in lines if ln.startswith(("[ERROR]", "[F ", "F1", "F0"))]
    if said:
        return said[0][:300]
    boiler = ("Error Message Summary", "C++ Traceback", "FatalError: `")
    interesting = [ln for ln in lines if ("Error" in ln or "error" in ln or "Exception" in ln)
                   and not ln.startswith(boiler)]
    return (interesting or lines or [""])[-1][:300]


def write_result(path: str, data: dict[str, Any]) -> None:
    """Write a worker's JSON result (called in the worker)."""
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True))


def report_result(path: str, work: Callable[[], dict[str, Any]]) -> int:
    """Give a worker's exit code after running `work` and writing its result (or its one-line error)."""
    try:
        data = work()
    except Exception as exc:  # the parent turns this into a one-line ConversionError
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        write_result(path, {"error": f"{type(exc).__name__}: {first}"})
        return 1
    write_result(path, data)
    return 0
