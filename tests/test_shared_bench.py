"""A shared bench, end to end through the real adb server and a virtual phone: leases, run locks,
failed writes (disk full, store locked), kill -9, and threads past the phone's cores."""

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
from conftest import run_kpmobile as kpmobile

from kpmobile.store import Store
from kpmobile.store.db import INTERRUPTED_GONE
from kpmobile.store.journal import journal_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
MODEL = "pp-tinypose-128x96"


def _bench(server: str, tmp: Path, db: Path, *extra: str, repeats: int = 3) -> list[str]:
    return ["bench", "--adb-server", server, "--no-virtual", "--db", str(db), "--out", str(tmp / "out"),
            "-m", MODEL, "--threads", "1", "--warmup", "1", "--repeats", str(repeats), *extra]


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kpmobile", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "250", **(env or {})})


def _wait(what: str, check: Callable[[], Any], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (sqlite3.Error, OSError):
            value = None
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _rows(db: Path, table: str = "cases") -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    finally:
        con.close()


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


# A case of a sweep that shared the phone with another would take up to twice its solo time. The stored times
# of two leased sweeps are held to the spread of solo sweeps of the same phone, run just before and just after
# them (so the bound follows the host's drift), widened by SOLO_MARGIN each way for the host's noise. The phone
# runs its commands at nice -20 on one CPU (the lowest: test_verdicts_e2e pins its phone to the highest), as a
# phone's runner has its cores to itself; two runners at once there split that CPU, and each takes about 2x.
# Measured (pp-tinypose-128x96, 1 thread, 100 iterations, 3 cases a sweep; avg_ms of each case):
#   load 7-11 on 2 cores: solo 25.4-35.2 ms; the two leased sweeps 20.3-38.5 (0.80-1.09 of the solo extremes);
#     two sweeps at once on two phones on that CPU (no lease between them) 31.9-66.3 (up to 1.88x);
#   load 11-13: solo 18.9-24.8; leased 17.0-21.0 (within); at once 27.6-32.0 (up to 1.29x, the sweeps only
#     partly overlapped);
#   load 14-25: solo 19.1-44.2 (the host drifted 2x between the two solo sweeps); leased 20.3-26.1 (within);
#   this test at load 23: solo 16.3-22.8, leased 17.2-21.5; at load 21: solo 18.7-22.0, leased 19.0-28.0 (1.28x).
# 1.5 catches a case measured while the other sweep's ran (about 2x) and tolerates the noise seen at load 7-25.
SOLO_MARGIN = 1.5


def _one_cpu(phone: Any) -> None:
    """Run the virtual phone, and every command it starts from now on, on the host's lowest CPU."""
    cpu = min(os.sched_getaffinity(0))
    for tid in os.listdir(f"/proc/{phone.process.pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


def _solo_times(server: str, tmp: Path, name: str) -> list[float]:
    db = tmp / name
    res = kpmobile(*_bench(server, tmp, db, "--rounds", "3", repeats=100))
    assert res.returncode == 0, res.stderr[-3000:]
    return [float(r["avg_ms"]) for r in _rows(db)]


def _db_of(args: list[str]) -> Path:
    return Path(args[args.index("--db") + 1])


def _take_turns(first_args: list[str], refused_args: list[str], second_args: list[str],
                env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run two sweeps that want one phone (or the host) and a third with --no-wait. The first is stopped
    (SIGSTOP) once it stored a case, so it holds the lease whatever the host's speed, until the refused one
    is done and the second has opened its run (before it leases). Give (the first's pid, the refused one's
    error line, the second's stderr), both sweeps having exited 0."""
    first = _start(first_args, env)
    second: subprocess.Popen[str] | None = None
    try:
        _wait("the first sweep's first case", lambda: _rows(_db_of(first_args)))
        first.send_signal(signal.SIGSTOP)
        refused = kpmobile(*refused_args, env=env)
        lines = _error_lines(refused.stderr)
        assert refused.returncode != 0 and len(lines) == 1, refused.stdout[-2000:] + refused.stderr[-3000:]
        refused_db = _db_of(refused_args)
        assert not refused_db.exists() or not _rows(refused_db, "runs")  # refused before a run was kept
        second = _start(second_args, env)
        _wait("the second sweep's run", lambda: _rows(_db_of(second_args), "runs"))
    finally:
        first.send_signal(signal.SIGCONT)
    _, err_a = first.communicate(timeout=600)
    assert second is not None
    _, err_b = second.communicate(timeout=600)
    assert first.returncode == 0, err_a[-3000:]
    assert second.returncode == 0, err_b[-3000:]
    return first.pid, lines[0], err_b


def _assert_took_turns(*dbs: Path) -> None:
    """Assert that no case of one sweep ran while another's did (the stored start and end stamps)."""
    spans = sorted((r["started"], r["created"]) for db in dbs for r in _rows(db))
    assert len(spans) == 3 * len(dbs) and all(start is not None for start, _ in spans)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, spans


def test_two_sweeps_on_one_phone_take_turns_and_no_wait_names_the_holder(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    _one_cpu(virtual_phone_factory(extra_args=["--nice", "-20"]))
    solo = _solo_times(adb_server.address, tmp_path, "solo-before.db")
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    pid, line, err_b = _take_turns(_bench(adb_server.address, tmp_path, a_db, "--rounds", "3", repeats=100),
                                   _bench(adb_server.address, tmp_path, tmp_path / "c.db", "--no-wait"),
                                   _bench(adb_server.address, tmp_path, b_db, "--rounds", "3", repeats=100))
    assert line.startswith("error: phone ") and f"(pid {pid} on " in line and "is leased by run" in line
    assert "waiting: phone" in err_b and f"pid {pid}" in err_b
    _assert_took_turns(a_db, b_db)
    solo += _solo_times(adb_server.address, tmp_path, "solo-after.db")
    low, high = min(solo) / SOLO_MARGIN, max(solo) * SOLO_MARGIN
    shared = {db.name: [round(float(r["avg_ms"]), 2) for r in _rows(db)] for db in (a_db, b_db)}
    print(f"load {os.getloadavg()[0]:.1f}: solo {min(solo):.2f}-{max(solo):.2f} ms, shared {shared}")
    assert all(low <= t <= high for times in shared.values() for t in times), (solo, shared)


def test_kill_9_shows_process_gone_and_two_resumes_one_refused_ok_rows_kept(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    virtual_phone_factory()
    db = tmp_path / "kp.db"
    proc = _start(_bench(adb_server.address, tmp_path, db, "--rounds", "4", repeats=200))
    _wait("two stored cases", lambda: len(_rows(db)) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store(db, readonly=True)
    run = store.run()
    assert run.status == "running" and run.shown_status() == INTERRUPTED_GONE
    listed = kpmobile("runs", "list", "--db", str(db), "--json")
    assert json.loads(listed.stdout)[0]["status"] == INTERRUPTED_GONE
    before = {r["id"]: dict(r) for r in _rows(db) if r["status"] == "ok"}
    resume = ["bench", "--resume", run.id, "--db", str(db), "--adb-server", adb_server.address, "--no-virtual",
              "--out", str(tmp_path / "out")]
    one = _start(resume)
    _wait("the resume to own the run", lambda: Store(db, readonly=True).run(run.id).pid == one.pid)
    two = kpmobile(*resume)
    (line,) = _error_lines(two.stderr)
    assert two.returncode != 0 and f"run {run.id} is being run by pid {one.pid} on " in line
    _, err = one.communicate(timeout=600)
    assert one.returncode == 0, err[-3000:]
    after = _rows(db)
    for row_id, row in before.items():
        assert dict(next(r for r in after if r["id"] == row_id)) == row  # no stored ok row changed
    ok = [r["case_key"] for r in after if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) == 4
    assert Store(db, readonly=True).run(run.id).status == "complete"


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here (needed for a disk that fills up)")


def _fill(folder: Path) -> Path:
    """Give the file that now fills `folder`'s disk (the store's own growth may have filled it first)."""
    filler = folder / "filler"
    try:
        with filler.open("wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass
    return filler


def test_a_disk_that_fills_mid_sweep_keeps_the_case_in_the_journal_and_resume_completes(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    virtual_phone_factory()
    home = tmp_path / "home"
    _mount_tmpfs(home, "200k")
    try:
        db = home / "kpmobile.db"
        env = {"KPMOBILE_HOME": str(home)}
        args = ["bench", "--adb-server", adb_server.address, "--no-virtual", "--out", str(tmp_path / "out"),
                "-m", MODEL, "--threads", "1", "--rounds", "4", "--warmup", "1", "--repeats", "60"]  # small store
        proc = _start(args, env)
        _wait("a stored case", lambda: _rows(db))
        filler = _fill(home)
        _, err = proc.communicate(timeout=600)
        lines = _error_lines(err)
        assert proc.returncode not in (0, 130) and len(lines) == 1, err[-3000:]
        assert "full" in lines[0] and "--resume" in lines[0]
        kept = journal_path(db).read_text().split("\0", 1)[0].strip().splitlines()
        assert len(kept) == 1 and json.loads(kept[0])["status"] == "ok"
        run = Store(db, readonly=True).run()
        assert run.status == "interrupted" and "full" in (run.error or "")
        filler.unlink(missing_ok=True)
        resumed = kpmobile("bench", "--resume", run.id, "--adb-server", adb_server.address, "--no-virtual",
                           "--out", str(tmp_path / "out"), env=env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        keys = [r["case_key"] for r in _rows(db) if r["status"] == "ok"]
        assert len(keys) == len(set(keys)) == 4
        assert not journal_path(db).exists() or not journal_path(db).read_bytes().strip(b"\0")
    finally:
        subprocess.run(["umount", "-l", str(home)], capture_output=True)


_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


def test_a_store_locked_for_45_s_mid_sweep_stops_or_waits_cleanly(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    virtual_phone_factory()
    db = tmp_path / "kp.db"
    proc = _start(_bench(adb_server.address, tmp_path, db, "--rounds", "3", repeats=100))
    _wait("a stored case", lambda: _rows(db))
    holder = subprocess.Popen([sys.executable, "-c", _LOCK, str(db), "45"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    _, err = proc.communicate(timeout=600)
    holder.wait(timeout=120)
    lines = _error_lines(err)
    run = Store(db, readonly=True).run()
    if proc.returncode == 0:  # waited the lock out
        assert run.status == "complete" and not lines
    else:
        assert len(lines) == 1 and "locked" in lines[0] and f"--resume {run.id}" in lines[0], err[-3000:]
        assert run.status == "interrupted"
        resumed = kpmobile("bench", "--resume", run.id, "--db", str(db), "--adb-server", adb_server.address,
                           "--no-virtual", "--out", str(tmp_path / "out"))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    keys = [r["case_key"] for r in _rows(db) if r["status"] == "ok"]
    assert len(keys) == len(set(keys)) == 3


def test_threads_past_the_phones_cores_are_named_in_a_warning(adb_server: Any, virtual_phone_factory: Any,
                                                              tmp_path: Path) -> None:
    virtual_phone_factory()
    db = tmp_path / "kp.db"
    args = _bench(adb_server.address, tmp_path, db)
    args[args.index("--threads") + 1] = "200"
    res = kpmobile(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "warning: oversubscribed: 200 threads on phone" in res.stderr and "--allow-oversubscribe" in res.stderr
    quiet = kpmobile(*args, "--allow-oversubscribe")
    assert quiet.returncode == 0 and "oversubscribed" not in quiet.stderr


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM,), (signal.SIGHUP,)],
                         ids=["sigint-twice", "sigterm", "sighup"])
def test_stop_signals_mark_the_run_interrupted_and_print_the_resume_line(
        signals: tuple[signal.Signals, ...], adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    virtual_phone_factory()
    db = tmp_path / "kp.db"
    proc = _start(_bench(adb_server.address, tmp_path, db, "--rounds", "3", repeats=300))
    _wait("a stored case", lambda: _rows(db))
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.1)
    _, err = proc.communicate(timeout=300)
    run = Store(db, readonly=True).run()
    lines = _error_lines(err)
    assert proc.returncode == 130, err[-3000:]
    assert len(lines) == 1 and f"--resume {run.id}" in lines[0]
    assert run.status == "interrupted"


def test_two_sweeps_with_no_phone_each_start_their_own_virtual_phone(adb_server: Any, tmp_path: Path) -> None:
    args = ["bench", "--adb-server", adb_server.address, "-m", MODEL, "--threads", "1", "--warmup", "1",
            "--repeats", "20", "--rounds", "2", "--out", str(tmp_path / "out")]
    one = _start([*args, "--db", str(tmp_path / "a.db")])
    _wait("the first sweep's virtual phone", lambda: adb_server.client().list())
    two = _start([*args, "--db", str(tmp_path / "b.db")])
    for proc in (one, two):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert "starting a virtual phone" in err
    serials = {r["serial"] for db in ("a.db", "b.db") for r in _rows(tmp_path / db)}
    assert len(serials) == 2  # never the other sweep's phone, which stops when that sweep ends


def test_two_host_sweeps_take_turns_and_no_wait_names_the_holder(tmp_path: Path) -> None:
    env = {"KPMOBILE_LOCK_DIR": str(tmp_path / "locks")}  # this host's lock, apart from other test sessions'
    a_db, b_db, c_db = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"

    def host(db: Path, *extra: str) -> list[str]:
        return ["bench", "--device", "host", "--backend", "lite-x86", "--models", MODEL, "--rounds", "3",
                "--warmup", "1", "--repeats", "20", "--db", str(db), "--out", str(tmp_path / "out"), *extra]

    pid, line, err_b = _take_turns(host(a_db), host(c_db, "--no-wait"), host(b_db), env)
    assert line.startswith("error: host ") and f"(pid {pid} on " in line and "is leased by run " in line
    assert "waiting: host " in err_b and f"pid {pid}" in err_b
    _assert_took_turns(a_db, b_db)
