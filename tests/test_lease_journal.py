"""Phone leases (host lock + lease file on a virtual phone) and the journal of cases a store refused."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kpmobile.owner import Owner
from kpmobile.records import BenchCase
from kpmobile.store import Store, journal
from kpmobile.store.db import case_values
from kpmobile.sweep.lease import LEASE_PATH, Holder, LeaseBusy, acquire, parse_holder

RUN_A, RUN_B = "20261201-000000-aaaaaa", "20261201-000000-bbbbbb"
CASE = BenchCase(model="pp-tinypose-128x96", device="fpA", threads=1)


def _values(run: str, case: BenchCase = CASE, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(serial="A", status="ok", numbers={"avg_ms": 11.0}, error=None, record=None,
                                raw_log="log " * 50, model_hash=None, artifact_hash=None, runner=None,
                                runner_version=None, extra=None, started=1.0)
    base.update(kw)
    return case_values(run, case, **base)


def test_a_locked_store_puts_the_case_in_the_journal_and_resume_replays_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "kp.db"
    store = Store(db)
    run = store.new_run("test", {})
    journal.reserve(db)
    monkeypatch.setenv("KPMOBILE_BUSY_TIMEOUT_S", "0.2")
    locked = Store(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(journal.CaseJournalled, match="kept in .*kp.db.journal"):
            journal.store_or_journal(locked, _values(run))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r["case_key"] for r in journal.read(db)] == [CASE.key()]
    assert journal.replay(store, run) == 1
    assert journal.replay(store, run) == 0 and not journal.journal_path(db).exists()
    (row,) = store.attempts(run)
    assert (row.status, row.avg_ms, row.raw_log) == ("ok", 11.0, "log " * 50)


def test_replay_keeps_other_runs_and_never_stores_a_row_twice(tmp_path: Path) -> None:
    db = tmp_path / "kp.db"
    store = Store(db)
    run = store.new_run("test", {})
    other = store.new_run("other", {})
    row = _values(run)
    journal.append(db, row)
    journal.append(db, _values(other))
    store.insert_case(row)  # stored already (e.g. the write went through just before a crash)
    assert journal.replay(store, run) == 0
    assert [r["run_id"] for r in journal.read(db)] == [other]
    assert len(store.attempts(run)) == 1


def test_the_reserve_takes_a_case_on_a_full_disk(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        db = mnt / "kp.db"
        journal.reserve(db)
        with pytest.raises(OSError):
            (mnt / "filler").write_bytes(b"x" * 400_000)
        path = journal.append(db, _values(RUN_A))
        assert journal.read(db)[0]["avg_ms"] == 11.0 and path.parent == mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_holder_text_round_trips_and_garbage_is_not_a_holder() -> None:
    h = Holder(Owner("lab-1", 42, 7), RUN_A, 123.5)
    assert parse_holder(h.to_text()) == h
    assert parse_holder("x; rm -rf /") is None and parse_holder("") is None


_HOLD = """
import sys, time
from pathlib import Path
from kpmobile.devices.android import Phone
from kpmobile.sweep.lease import acquire
lease = acquire(Phone(sys.argv[1], sys.argv[2]), sys.argv[1], sys.argv[3], Path(sys.argv[4]), wait=False,
                notify=print)
print("held", flush=True)
time.sleep(float(sys.argv[5]))
if sys.argv[6] == "release":
    lease.release()
"""


@pytest.mark.e2e
def test_a_leased_phone_is_refused_then_waited_for_and_a_dead_holder_is_taken_over(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    from kpmobile.devices.android import Phone

    vphone = virtual_phone_factory()
    phone = Phone(vphone.serial, adb_server.address)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    locks = tmp_path / "leases"

    def hold(seconds: float, end: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", _HOLD, vphone.serial, adb_server.address, RUN_A,
                                 str(locks), str(seconds), end], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    holder = hold(600, "release")
    try:
        with pytest.raises(LeaseBusy, match=f"leased by run {RUN_A} \\(pid {holder.pid} on "):
            acquire(phone, vphone.serial, RUN_B, locks, wait=False, notify=print)
        assert RUN_A in phone.shell(f"cat {LEASE_PATH}").stdout
    finally:
        holder.kill()
        holder.wait()
    notes: list[str] = []
    lease = acquire(phone, vphone.serial, RUN_B, locks, wait=True, notify=notes.append, poll_s=0.05)
    assert any("took over the stale lease" in n and "process gone" in n for n in notes), notes
    assert RUN_B in phone.shell(f"cat {LEASE_PATH}").stdout
    lease.release()
    assert phone.shell(f"cat {LEASE_PATH} 2>/dev/null; true").stdout.strip() == ""

    holder = hold(1.0, "release")  # a live holder that finishes: the waiter gets the phone after it
    notes.clear()
    lease = acquire(phone, vphone.serial, RUN_B, locks, wait=True, notify=notes.append, poll_s=0.05)
    assert holder.wait(timeout=30) == 0
    assert notes and notes[0].startswith(f"waiting: phone {vphone.serial} is leased by run {RUN_A}")
    lease.release()


def _take(name: str, lease: Any, start: Any, won: dict[str, Any]) -> None:
    start.wait()
    won[name] = lease.try_acquire(time.time())


@pytest.mark.e2e
def test_two_takeovers_of_one_stale_lease_leave_exactly_one_holder(adb_server: Any, virtual_phone_factory: Any,
                                                                    tmp_path: Path) -> None:
    import threading

    from kpmobile.devices.android import Phone
    from kpmobile.sweep.lease import PhoneLease, content_sum

    vphone = virtual_phone_factory()
    phone = Phone(vphone.serial, adb_server.address)
    lease_file = vphone.root / LEASE_PATH.lstrip("/")
    stale = Holder(Owner("lab-gone", 1, None), RUN_A, 1.0)  # another host's lease, expired long ago

    def two_sweeps(n: int) -> tuple[PhoneLease, PhoneLease]:
        lease_file.parent.mkdir(parents=True, exist_ok=True)
        lease_file.write_text(stale.to_text() + "\n")
        return (PhoneLease(phone, Holder(Owner("lab-a", 100 + n, None), RUN_B, time.time() + 900)),
                PhoneLease(phone, Holder(Owner("lab-b", 200 + n, None), RUN_B, time.time() + 900)))

    # The interleaving that let both hold it: B read the stale lease, A took it over, then B acted on what it
    # read. B's compare-and-swap finds A's content, not the stale one, and leaves A's lease alone.
    a, b = two_sweeps(0)
    assert a.try_acquire(time.time())[0]
    assert b.take_over(content_sum(stale.to_text())) != "kpmobile-lease-taken"
    assert lease_file.read_text().strip() == a.holder.to_text()
    taken, other, _ = b.try_acquire(time.time())
    assert not taken and other is not None and other.to_text() == a.holder.to_text()

    for n in range(1, 6):  # both at once, through the real adb server, from the same starting line
        a, b = two_sweeps(n)
        start = threading.Barrier(2)
        won: dict[str, tuple[bool, Holder | None, str | None]] = {}
        threads = [threading.Thread(target=_take, args=(name, lease, start, won))
                   for name, lease in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        winners = [name for name, (taken, _, _) in won.items() if taken]
        assert len(won) == 2 and len(winners) == 1, won
        winner = a if winners == ["a"] else b
        assert lease_file.read_text().strip() == winner.holder.to_text()
        assert "expired" in (won[winners[0]][2] or "")  # the winner says whose stale lease it took over
        winner.release()
        assert not lease_file.exists()
