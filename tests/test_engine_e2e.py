"""One sweep engine for phones and the host (issue 11): the same Ctrl-C ends both the same way, and a
run that fails while it prepares is stored "failed" with its reason and a finish time.

The SIGINT is sent only once a case is stored and the next case's runner process is seen running
(the virtual phone's runner, or the host's backend worker), so it lands inside a case every time.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AdbServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "COLUMNS": "250"}


def _cmdlines() -> dict[int, tuple[int, str]]:
    """Give every process: pid -> (parent pid, command line)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(pid)] = (ppid, cmd)
    return out


def _stored(db: Path) -> list[tuple[str, str, str]]:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT run_id, case_key, status FROM cases ORDER BY id").fetchall()
    except sqlite3.Error:
        return []


def _run_row(db: Path, run_id: str) -> tuple[str, float | None, str | None]:
    with sqlite3.connect(db) as con:
        status, finished, error = con.execute("SELECT status, finished, error FROM runs WHERE id=?",
                                              (run_id,)).fetchone()
    return str(status), finished, error


def _interrupt_inside_a_case(args: list[str], db: Path, running: Callable[[int], bool]) -> tuple[
        subprocess.Popen[str], str, str]:
    """Start `kpmobile ARGS`, wait for one stored case and then for `running(pid)`, send SIGINT; give the
    process, its stderr and the run id."""
    proc = subprocess.Popen([sys.executable, "-m", "kpmobile", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    deadline = time.monotonic() + 600
    try:
        while not _stored(db):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no case was stored"
            time.sleep(0.1)
        while not running(proc.pid):
            assert proc.poll() is None, "the sweep ended before the next case ran: " + proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the next case's runner never showed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, stderr, _stored(db)[0][0]


def _assert_interrupted(proc: subprocess.Popen[str], stderr: str, db: Path, run_id: str) -> list[tuple[str, str, str]]:
    assert proc.returncode == 130, stderr[-2000:]
    lines = [ln for ln in stderr.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1 and f"--resume {run_id}" in lines[0] and "Aborted" not in stderr, stderr[-2000:]
    status, finished, _ = _run_row(db, run_id)
    assert status == "interrupted" and finished is not None
    return _stored(db)


def _host_worker_running(pid: int) -> bool:
    return any(ppid == pid and "kpmobile.backends.worker" in cmd for ppid, cmd in _cmdlines().values())


@pytest.mark.parametrize("kind", ["phone", "host"])
def test_ctrl_c_then_resume_is_the_same_for_phones_and_host(kind: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    db = tmp_path / "kp.db"
    common = ["--db", str(db), "--out", str(tmp_path / "out"), "--warmup", "1", "--repeats", "3"]
    if kind == "phone":
        adb: AdbServer = request.getfixturevalue("adb_server")
        phone: Any = request.getfixturevalue("virtual_phone_factory")()
        args = ["bench", "--adb-server", adb.address, "--no-virtual", "--models", "pp-tinypose-128x96",
                "--threads", "1,4", "--rounds", "2", *common]
        total = 4

        def running(pid: int) -> bool:  # noqa: ARG001 (the host check needs the pid, this one does not)
            return any("kpmobile_lite_runner" in cmd and str(phone.root) in cmd for _, cmd in _cmdlines().values())
    else:
        args = ["bench", "--device", "host", "--backend", "paddle-cpu,lite-x86", "--models", "pp-tinypose-128x96",
                "--rounds", "2", *common]
        total = 4
        running = _host_worker_running

    proc, stderr, run_id = _interrupt_inside_a_case(args, db, running)
    before = _assert_interrupted(proc, stderr, db, run_id)
    assert 1 <= len(before) < total and all(status == "ok" for _, _, status in before)

    resume = ["bench", "--resume", run_id, "--db", str(db), "--out", str(tmp_path / "out"), "--json"]
    if kind == "phone":
        resume += ["--adb-server", adb.address, "--no-virtual"]
    done = subprocess.run([sys.executable, "-m", "kpmobile", *resume], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["ok"] == total
    after = _stored(db)
    keys = [k for _, k, _ in after]
    assert len(keys) == len(set(keys)) == total and after[:len(before)] == before
    status, finished, error = _run_row(db, run_id)
    assert status == "complete" and finished is not None and error is None


def test_host_sweep_failing_while_it_prepares_is_stored_failed(tmp_path: Path) -> None:
    sweep = tmp_path / "host.toml"
    sweep.write_text('[sweep]\ndevices = ["host"]\nprecision = "fp16"\nmodels = ["pp-tinypose-128x96"]\n'
                     'backends = ["paddle-cpu"]\nwarmup = 0\nrepeats = 1\n')
    db = tmp_path / "kp.db"
    res = subprocess.run([sys.executable, "-m", "kpmobile", "bench", "--config", str(sweep), "--db", str(db)],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=900)
    assert res.returncode == 2, res.stderr[-2000:]
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "fp16" in line and "paddle-trt-fp16" in line
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT id, status, finished, error FROM runs").fetchall()
    assert len(rows) == 1
    run_id, status, finished, error = rows[0]
    assert status == "failed" and finished is not None and "fp16" in error and "\n" not in error
    assert _stored(db) == []
    shown = subprocess.run([sys.executable, "-m", "kpmobile", "runs", "list", "--db", str(db), "--json"],
                           capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert shown.returncode == 0 and json.loads(shown.stdout)[0]["status"] == "failed"
