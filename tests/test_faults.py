"""Issue 7: faults during a sweep, on virtual phones through the real adb server.

Each test runs the real CLI over a faulty phone and a healthy one, then checks the store: the healthy
phone's cases are ok, the faulty phone's are failed with a reason (or the phone is skipped with one),
and `--resume` completes the run once the cause is removed, leaving what was stored untouched.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AdbServer, free_port
from conftest import run_kpmobile as kpmobile

from kpmobile.devices.adbserver import ensure_server, kill_server
from kpmobile.devices.virtual_phone import faults
from kpmobile.devices.virtual_phone.launch import VirtualPhoneProcess, start_virtual_phone

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.slow]

FAST = ["--warmup", "1", "--repeats", "3", "--rounds", "1"]
MODEL = "pp-tinypose-128x96"


# helpers -----------------------------------------------------------------------------------------
def bench_args(server: str, tmp: Path, *extra: str) -> list[str]:
    return ["bench", "--adb-server", server, "--no-virtual", "--db", str(tmp / "kp.db"), "--out", str(tmp / "out"),
            "--models", MODEL, "--threads", "1,2", *FAST, *extra]


def bench(server: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return kpmobile(*bench_args(server, tmp, *extra))


# serial, case_key, threads, status, error, avg_ms, created
Row = tuple[str, str, int, str, str | None, float | None, float]


def stored(tmp: Path) -> list[Row]:
    with sqlite3.connect(tmp / "kp.db") as db:
        return db.execute("SELECT serial, case_key, threads, status, error, avg_ms, created FROM cases"
                          " ORDER BY id").fetchall()


def last_run(tmp: Path) -> str:
    with sqlite3.connect(tmp / "kp.db") as db:
        return str(db.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()[0])


def of(rows: list[Row], serial: str, status: str | None = None) -> list[Row]:
    return [r for r in rows if r[0] == serial and (status is None or r[3] == status)]


def one_line_reasons(rows: list[Row]) -> list[str]:
    reasons = [r[4] or "" for r in rows]
    assert all(reason and "\n" not in reason for reason in reasons), reasons
    return reasons


def assert_kept(before: list[Row], after: list[Row]) -> None:
    """Every ok case stored before is still there, unchanged (same numbers, same time of storing)."""
    now = {r[1]: r for r in after}
    for row in before:
        if row[3] == "ok":
            assert now[row[1]] == row


def resume(server: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return kpmobile("bench", "--adb-server", server, "--no-virtual", "--db", str(tmp / "kp.db"), "--out",
                    str(tmp / "out"), "--resume", last_run(tmp), *extra)


def assert_complete(tmp: Path, serials: list[str], per_phone: int = 2) -> None:
    rows = stored(tmp)
    for serial in serials:
        ok = of(rows, serial, "ok")
        assert len(ok) == per_phone and all(r[5] and r[5] > 0 for r in ok), rows
    # each attempt is its own row (a failed one stays beside the ok retry): one ok row per case
    assert len({r[1] for r in rows}) == per_phone * len(serials)
    assert sorted(r[1] for r in rows if r[3] == "ok") == sorted({r[1] for r in rows})
    with sqlite3.connect(tmp / "kp.db") as db:
        assert db.execute("SELECT status FROM runs WHERE id=?", (last_run(tmp),)).fetchone()[0] == "complete"


@pytest.fixture
def restarted(adb_server: AdbServer) -> Iterator[list[VirtualPhoneProcess]]:
    """Phones a test starts again by hand (same port and root); stopped after the test."""
    phones: list[VirtualPhoneProcess] = []
    yield phones
    for phone in phones:
        adb_server.client().disconnect(phone.serial)
        phone.stop()


def restart(server: AdbServer, old: VirtualPhoneProcess, keep: list[VirtualPhoneProcess], *args: str,
            wait: bool = True) -> VirtualPhoneProcess:
    """Give the same phone (port, root, so the same fingerprint) served again without its fault."""
    old.stop()
    phone = start_virtual_phone(port=old.port, root=old.root, extra_args=list(args))
    keep.append(phone)
    server.adb("disconnect", old.serial)
    if wait:
        server.client().connect(phone.serial, timeout=15)
        server.wait_state(phone.serial, "device")
    return phone


def wait_for_ok_case(tmp: Path, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (tmp / "kp.db").exists():
            try:
                if any(r[3] == "ok" for r in stored(tmp)):
                    return
            except sqlite3.OperationalError:
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    pytest.fail("no case was stored in time")


# runner faults (2, 3, 4, 5, 11), switched in the phone's ROOT/faults/runner ---------------------------
@pytest.fixture(scope="module")
def arm_nb() -> Path:
    """Give an ARM .nb of the small model (converted once, cached by content hash)."""
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.convert import convert_nb

    return convert_nb(ensure_model(resolve(MODEL)), "arm").path


RUNNER_CASES = {
    "segfault-139": ("crash", "", ["runner exited 139 (SIGSEGV)", "--resume"]),
    "hang-killed": ("hang", "", ["runner hung", "killed on the device", "--case-timeout"]),
    "corrupt-nb": ("corrupt-nb", "", ["not a Paddle Lite .nb", "--resume"]),
    "arm-nb-on-x86": ("swap-nb", "ARM", ["converted for arm", "x86"]),
    "truncated-log": ("truncate", "", ["no complete run", "raw log"]),
    "garbage-log": ("garbage", "", ["no complete run"]),
}


@pytest.mark.parametrize("case", list(RUNNER_CASES))
def test_runner_fault_is_stored_failed_and_resume_completes(case: str, adb_server: AdbServer,
                                                            virtual_phone_factory: Any, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    mode, arg, words = RUNNER_CASES[case]
    if arg == "ARM":
        arg = str(request.getfixturevalue("arm_nb"))
    bad, good = virtual_phone_factory(), virtual_phone_factory()
    faults.set_runner_fault(bad.root, mode, arg)
    extra = ["--case-timeout", "12"] if mode == "hang" else []

    res = bench(adb_server.address, tmp_path, *extra)
    assert res.returncode == 1, res.stderr[-2000:]
    first = stored(tmp_path)
    assert len(of(first, good.serial, "ok")) == 2  # the other phone went on
    failed = of(first, bad.serial, "failed")
    assert len(failed) == 2 and all(r[5] is None for r in failed)  # nothing stored from it as a number
    for reason in one_line_reasons(failed):
        assert all(w.lower() in reason.lower() for w in words), reason
    if mode == "hang":
        pid = int((bad.root / "faults" / "hang.pid").read_text())
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    if mode in ("truncate", "garbage"):
        with sqlite3.connect(tmp_path / "kp.db") as db:
            logs = db.execute("SELECT raw_log, record, min_ms, max_ms, first_ms, init_ms FROM cases WHERE"
                              " serial=?", (bad.serial,)).fetchall()
        assert all(log[0] and log[1:] == (None,) * 5 for log in logs)  # the raw log is kept, no numbers

    faults.set_runner_fault(bad.root, "none")
    again = resume(adb_server.address, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_kept(first, stored(tmp_path))
    assert_complete(tmp_path, [bad.serial, good.serial])


# 1: the phone disconnects mid-sweep ----------------------------------------------------------------
def test_phone_disconnects_mid_sweep(adb_server: AdbServer, virtual_phone_factory: Any, tmp_path: Path,
                                     restarted: list[VirtualPhoneProcess]) -> None:
    bad, good = virtual_phone_factory(), virtual_phone_factory()
    proc = subprocess.Popen([sys.executable, "-m", "kpmobile", *bench_args(adb_server.address, tmp_path,
                                                                          "--rounds", "2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_ok_case(tmp_path, proc)
    faults.drop_file(bad.root).parent.mkdir(exist_ok=True)
    faults.drop_file(bad.root).touch()  # the cable is pulled
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-2000:]
    first = stored(tmp_path)
    assert len(of(first, good.serial, "ok")) == 4
    failed = of(first, bad.serial, "failed")
    assert failed and len(of(first, bad.serial)) == 4
    assert any("re-plug" in r or "--resume" in r for r in one_line_reasons(failed))

    faults.drop_file(bad.root).unlink()
    restart(adb_server, bad, restarted)
    again = resume(adb_server.address, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_kept(first, stored(tmp_path))
    assert_complete(tmp_path, [bad.serial, good.serial], per_phone=4)


# 6 and 7: an unauthorized or offline phone is skipped with a message, and adopted on --resume -----------
def test_unauthorized_phone(adb_server: AdbServer, virtual_phone_factory: Any, tmp_path: Path,
                            restarted: list[VirtualPhoneProcess]) -> None:
    bad = virtual_phone_factory(auth="deny")
    good = virtual_phone_factory()
    res = bench(adb_server.address, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    note = next(line for line in res.stderr.splitlines() if bad.serial in line)
    assert "unauthorized" in note and "accept" in note and "prompt on the phone" in note
    assert f"skipped phone {bad.serial}" in res.stdout and "kpmobile bench --resume" in res.stdout
    first = stored(tmp_path)
    assert len(of(first, good.serial, "ok")) == 2 and not of(first, bad.serial)
    alone = kpmobile(*bench_args(adb_server.address, tmp_path, "--device", bad.serial))
    assert alone.returncode != 0
    line = alone.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "unauthorized" in line and "accept" in line

    restart(adb_server, bad, restarted, "--auth", "accept")  # the user accepted the prompt
    again = resume(adb_server.address, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_kept(first, stored(tmp_path))
    assert_complete(tmp_path, [bad.serial, good.serial])


def test_offline_phone(adb_server: AdbServer, virtual_phone_factory: Any, tmp_path: Path,
                       restarted: list[VirtualPhoneProcess]) -> None:
    good = virtual_phone_factory()
    bad = start_virtual_phone(root=tmp_path / "offline", extra_args=["--offline"])
    restarted.append(bad)
    with pytest.raises(Exception):  # noqa: B017 - adb gives up on a phone that never answers
        adb_server.client().connect(bad.serial, timeout=2)
    adb_server.wait_state(bad.serial, "offline")
    res = bench(adb_server.address, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    note = next(line for line in res.stderr.splitlines() if bad.serial in line)
    assert "offline" in note and ("re-plug" in note or "reconnect" in note)
    first = stored(tmp_path)
    assert len(of(first, good.serial, "ok")) == 2 and not of(first, bad.serial)

    restart(adb_server, bad, restarted)
    again = resume(adb_server.address, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_kept(first, stored(tmp_path))
    assert_complete(tmp_path, [bad.serial, good.serial])


# 8: device storage full ----------------------------------------------------------------------------
def test_storage_full(adb_server: AdbServer, virtual_phone_factory: Any, tmp_path: Path,
                      restarted: list[VirtualPhoneProcess]) -> None:
    bad = virtual_phone_factory(extra_args=["--quota", "200000"])
    good = virtual_phone_factory()
    res = bench(adb_server.address, tmp_path)
    assert res.returncode == 1, res.stderr[-2000:]
    first = stored(tmp_path)
    assert len(of(first, good.serial, "ok")) == 2
    failed = of(first, bad.serial, "failed")
    assert len(failed) == 2
    for reason in one_line_reasons(failed):
        assert "no space left on device" in reason and "free storage" in reason
    models = bad.root / "data/local/tmp/kpmobile/models"
    assert not models.exists() or not any(models.iterdir())  # the partial push is gone

    restart(adb_server, bad, restarted)
    again = resume(adb_server.address, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_kept(first, stored(tmp_path))
    assert_complete(tmp_path, [bad.serial, good.serial])


# 9: a runner built for the wrong ABI -----------------------------------------------------------------
def test_runner_for_the_wrong_abi(adb_server: AdbServer, virtual_phone_factory: Any, tmp_path: Path) -> None:
    from kpmobile.sweep.discover import own_runner_file

    bad = virtual_phone_factory(extra_args=["--abi", "arm64-v8a"])
    good = virtual_phone_factory()
    res = bench(adb_server.address, tmp_path, "--runner", "/bin/ls")  # an x86-64 ELF
    assert res.returncode == 1, res.stderr[-2000:]
    first = stored(tmp_path)
    assert len(of(first, good.serial, "ok")) == 2
    failed = of(first, bad.serial, "failed")
    assert len(failed) == 2
    for reason in one_line_reasons(failed):
        assert "x86_64" in reason and "arm64-v8a" in reason
    # Refused before anything was pushed: at most the sweep's lease (issue 14) was ever on that phone.
    pushed = [p for p in (bad.root / "data/local/tmp/kpmobile").rglob("*") if p.is_file() and p.name != "lease"]
    assert not pushed, pushed

    # A runner script passes the ELF check, so --resume gets past it and pushes the runner; the ARM
    # phone then fails to start it, as a phone without its #!python interpreter does (mksh: exit 126).
    runner, _ = own_runner_file()  # a runner script passes the ELF check: it runs wherever its interpreter does
    again = resume(adb_server.address, tmp_path, "--runner", str(runner))
    after = stored(tmp_path)
    assert_kept(first, after)
    assert (bad.root / "data/local/tmp/kpmobile/bin" / runner.name).is_file()
    elf_reasons = set(one_line_reasons(failed))
    new = [r for r in after if r not in first]  # each attempt is a row of its own (issue 14)
    for reason in one_line_reasons(of(new, bad.serial, "failed")):
        assert reason.startswith("runner exited") and reason not in elf_reasons  # it got to run
    assert len(of(new, bad.serial)) == 2 and len(after) == 4 + 2 and again.returncode == 1


# 10: the adb server is killed mid-run -----------------------------------------------------------------
def test_adb_server_killed_mid_run(virtual_phone_factory: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    ensure_server("127.0.0.1", port, home=home, env={"ADB_LIBUSB": "0"})
    server = AdbServer("127.0.0.1", port, home)
    try:
        a, b = virtual_phone_factory(server=server), virtual_phone_factory(server=server)
        proc = subprocess.Popen([sys.executable, "-m", "kpmobile",
                                 *bench_args(server.address, tmp_path, "--rounds", "2")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "HOME": str(home)})
        wait_for_ok_case(tmp_path, proc)
        first = stored(tmp_path)
        kill_server(port)
        _, err = proc.communicate(timeout=600)
        rows = stored(tmp_path)
        assert_kept(first, rows)
        if proc.returncode != 0:  # a case cut off by the kill is stored failed; --resume runs it
            reasons = [r[4] or "" for r in rows if r[3] == "failed"]
            assert all("adb" in reason or "--resume" in reason for reason in reasons), err[-2000:]
            again = resume(server.address, tmp_path)
            assert again.returncode == 0, (again.stderr[-2000:], rows, err[-3000:])
        assert_complete(tmp_path, [a.serial, b.serial], per_phone=4)
        assert server.state(a.serial) == "device" and server.state(b.serial) == "device"  # re-connected
    finally:
        kill_server(port)


# 12: numpy 2 beside paddlelite ------------------------------------------------------------------------
def test_numpy_2_is_refused_at_start_up(tmp_path: Path) -> None:
    from kpmobile.paths import cache_dir

    wheels = cache_dir() / "test-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("numpy-2.*-cp310-*.whl"))
    if not found:
        got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                              "--python-version", "3.10", "--dest", str(wheels), "numpy==2.2.6"],
                             capture_output=True, text=True, timeout=300)
        found = sorted(wheels.glob("numpy-2.*-cp310-*.whl"))
        if got.returncode != 0 or not found:
            pytest.skip(f"the package registry is unreachable, so no numpy 2 wheel: {got.stderr.strip()[-200:]}")
    site = tmp_path / "numpy2"
    with zipfile.ZipFile(found[-1]) as wheel:
        wheel.extractall(site)  # what `pip install --target` lays out
    env = {"PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    probe = subprocess.run([sys.executable, "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                           text=True, env={**os.environ, **env}, timeout=120)
    assert probe.stdout.startswith("2."), probe.stderr  # numpy 2 really is the one imported
    db = tmp_path / "kp.db"
    for args in (["devices"], ["bench", "--db", str(db), "--models", MODEL, "--no-virtual"]):
        res = kpmobile(*args, env=env)
        assert res.returncode != 0
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: numpy 2."), res.stderr[-2000:]
        assert "numpy<1.24" in lines[0]
    assert not db.exists()  # refused before anything was done
