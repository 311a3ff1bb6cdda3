"""The store refuses files that are not its own, reads read-only, migrates old layouts, keeps attempts."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_error_line
from conftest import run_kpmobile as kpmobile

from kpmobile.records import BenchCase, KernelTime
from kpmobile.store import RunBusy, Store, schema
from kpmobile.store.db import INTERRUPTED_GONE
from kpmobile.store.errors import NotAStore, StoreCorrupt, StoreLocked, StoreReadOnly, StoreTooNew

CASE = BenchCase(model="pp-tinypose-128x96", device="fpA", threads=1)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _filled(path: Path, cases: int = 1) -> tuple[Store, str]:
    store = Store(path)
    run = store.new_run("test", {"devices": {"fpA": {"label": "A"}}, "threads": [1]})
    for i in range(cases):
        store.add_case(run, BenchCase(model="m", device="fpA", threads=1, round=i), serial="A", status="ok",
                       numbers={"avg_ms": 10.0 + i}, raw_log="x" * 2000)
    return store, run


def test_another_applications_sqlite_file_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE contacts (name TEXT)")
        con.execute("INSERT INTO contacts VALUES ('ada')")
    con.close()
    before = _digest(tmp_path)
    with pytest.raises(NotAStore, match="another application"):
        Store(other)
    with pytest.raises(NotAStore):
        Store(other, readonly=True)
    line = one_error_line(kpmobile("runs", "import", str(tmp_path / "none.json"), "--db", str(other)))
    assert "cannot read" in line
    line = one_error_line(kpmobile("runs", "list", "--db", str(other)))
    assert "not a kpmobile store" in line or "another application" in line
    assert _digest(tmp_path) == before


def test_a_text_file_is_not_a_store_and_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping list\n" * 400)
    before = _digest(tmp_path)
    with pytest.raises(NotAStore, match="not a kpmobile store"):
        Store(path)
    assert _digest(tmp_path) == before


def test_a_garbage_page_gives_one_line_and_no_write(tmp_path: Path) -> None:
    path = tmp_path / "kp.db"
    store, run = _filled(path, cases=30)
    store.close()
    size = path.stat().st_size
    assert size > 5 * 4096
    with path.open("r+b") as fh:  # page 3 of the cases table's B-tree area
        fh.seek(3 * 4096)
        fh.write(os.urandom(4096))
    before = _digest(tmp_path)
    with pytest.raises(StoreCorrupt, match="corrupt"):
        Store(path)
    for args in (("runs", "list"), ("runs", "show", run), ("report", "mobile", "--run", run)):
        proc = kpmobile(*args, "--db", str(path))
        if proc.returncode:  # a read may still succeed when the damaged page is not read
            one_error_line(proc)
    assert _digest(tmp_path)["kp.db"] == before["kp.db"]  # readers of a WAL store may add -shm/-wal beside it


def test_a_newer_store_is_refused_and_an_older_one_migrated(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    Store(new).close()
    with sqlite3.connect(new) as con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.close()
    with pytest.raises(StoreTooNew, match="schema version 99"):
        Store(new)
    with pytest.raises(StoreTooNew):
        Store(new, readonly=True)

    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    schema.MIGRATIONS[0](con)  # the version-1 layout, as kpmobile 0.1 wrote it
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO runs VALUES ('20261201-000000-abcdef', 1.0, 2.0, 'complete', 'c', 'h', '0.1', '{}')")
    con.execute("INSERT INTO cases(run_id, case_key, device_fp, serial, model, backend, threads, power_mode, warmup,"
                " repeats, precision, batch, round, status, avg_ms, created) VALUES ('20261201-000000-abcdef', ?,"
                " 'fpA', 'A', 'pp-tinypose-128x96', 'arm', 1, 0, 10, 50, 'fp32', 1, 0, 'ok', 12.5, 3.0)",
                (CASE.key(),))
    con.commit()
    con.close()
    store = Store(old)
    assert schema.stored_version(store._db, old) == schema.SCHEMA_VERSION
    (row,) = store.cases("20261201-000000-abcdef")
    assert (row.avg_ms, row.attempt, row.started) == (12.5, 1, None)
    store.add_case("20261201-000000-abcdef", CASE, serial="A", status="failed", error="later attempt")
    assert [c.attempt for c in store.attempts("20261201-000000-abcdef")] == [1, 2]
    assert store.cases("20261201-000000-abcdef")[0].status == "ok"  # the ok row is the evidence


def test_a_stored_ok_row_is_never_replaced_by_a_later_attempt(tmp_path: Path) -> None:
    store = Store(tmp_path / "kp.db")
    run = store.new_run("test", {})
    store.add_case(run, CASE, serial="A", status="failed", error="first try")
    store.add_case(run, CASE, serial="A", status="ok", numbers={"avg_ms": 9.0})
    store.add_case(run, CASE, serial="A", status="failed", error="third try")
    assert [(c.attempt, c.status) for c in store.attempts(run)] == [(1, "failed"), (2, "ok"), (3, "failed")]
    (best,) = store.cases(run)
    assert (best.status, best.avg_ms) == ("ok", 9.0)
    assert store.done_keys(run) == {CASE.key()}


def test_a_locked_store_names_the_lock_not_a_foreign_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kp.db"
    store, run = _filled(path)
    monkeypatch.setenv("KPMOBILE_BUSY_TIMEOUT_S", "0.3")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        other = Store(path)
        with pytest.raises(StoreLocked, match="locked by another process"):
            other.add_case(run, CASE, serial="A", status="ok")
        assert Store(path, readonly=True).run(run).id == run  # readers are not blocked (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_only_store_is_readable_and_writes_say_read_only(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here (needed to make a store read-only for root)")
    try:
        store, run = _filled(mnt / "kp.db")
        store.close()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        proc = kpmobile("runs", "list", "--db", str(mnt / "kp.db"), "--json")
        assert proc.returncode == 0, proc.stderr
        assert run in proc.stdout
        assert kpmobile("report", "mobile", "--db", str(mnt / "kp.db"), "--format", "csv").returncode == 0
        with pytest.raises(StoreReadOnly, match="read-only"):
            Store(mnt / "kp.db").add_case(run, CASE, serial="A", status="ok")
        line = one_error_line(kpmobile("runs", "delete", run, "--db", str(mnt / "kp.db")))
        assert "read-only" in line and "not a kpmobile" not in line
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _run_rows(path: Path) -> dict[str, set[str]]:
    """Give, per table that holds a run's rows, the run ids its rows belong to."""
    con = sqlite3.connect(path)
    try:
        return {
            "runs": {r for (r,) in con.execute("SELECT id FROM runs")},
            "cases": {r for (r,) in con.execute("SELECT run_id FROM cases")},
            "samples": {r for (r,) in con.execute("SELECT c.run_id FROM samples s JOIN cases c ON c.id = s.case_id")},
            "op_profiles": {r for (r,) in con.execute("SELECT run_id FROM op_profiles")},
            "op_times": {r for (r,) in con.execute(
                "SELECT p.run_id FROM op_times t JOIN op_profiles p ON p.id = t.profile_id")},
            "orphans": {str(r) for (r,) in con.execute(
                "SELECT 'sample' FROM samples WHERE case_id NOT IN (SELECT id FROM cases) UNION ALL"
                " SELECT 'kernel' FROM op_times WHERE profile_id NOT IN (SELECT id FROM op_profiles)")},
        }
    finally:
        con.close()


def _with_everything(store: Store, run: str) -> None:
    """Give `run` samples (two attempts of a case) and an op profile with kernels, as sweeps store them."""
    for attempt in range(2):
        store.add_case(run, CASE, serial="A", status="failed" if attempt == 0 else "ok",
                       numbers={"avg_ms": 9.0}, samples=[9.0, 9.5, 8.5])
    kernels = [KernelTime("conv2d", "conv2d_fp32", "run", 10, 1.0, 0.9, 1.2, 0.6),
               KernelTime("relu", "relu_fp32", "run", 10, 0.5, 0.4, 0.6, 0.4)]
    store.add_op_profile(run, CASE, serial="A", status="ok", kernels=kernels, source="test", avg_ms=1.5)


def test_runs_delete_removes_the_run_and_everything_of_it_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "kp.db"
    store, run = _filled(path, cases=3)
    keep = store.new_run("other", {})
    for r in (run, keep):
        _with_everything(store, r)
    store.finish_run(run, "complete")
    store.close()
    everything = {"runs": {run, keep}, "cases": {run, keep}, "samples": {run, keep}, "op_profiles": {run, keep},
                  "op_times": {run, keep}, "orphans": set()}
    assert _run_rows(path) == everything

    con = sqlite3.connect(path)  # the run's own row cannot go: the rows deleted before it must come back
    con.execute("CREATE TRIGGER refuse BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'refused'); END")
    con.commit()
    line = one_error_line(kpmobile("runs", "delete", run, "--db", str(path)))
    assert "refused" in line
    assert _run_rows(path) == everything
    con.execute("DROP TRIGGER refuse")
    con.commit()
    con.close()

    proc = kpmobile("runs", "delete", run, "--db", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "5 case rows" in proc.stdout  # 3 rounds + 2 attempts
    assert _run_rows(path) == {"runs": {keep}, "cases": {keep}, "samples": {keep}, "op_profiles": {keep},
                               "op_times": {keep}, "orphans": set()}
    store = Store(path)
    assert [r.id for r in store.runs()] == [keep] and len(store.op_profiles(keep)) == 1
    one_error_line(kpmobile("runs", "delete", "../x", "--db", str(path)))


_OWN_A_RUN = """
import sys, time
from kpmobile.store import Store
store = Store(sys.argv[1])
print(store.new_run("held", {}), flush=True)
if sys.argv[2] == "hold":
    time.sleep(120)
"""


def test_a_run_whose_process_is_gone_shows_interrupted_and_a_live_one_is_not_claimed(tmp_path: Path) -> None:
    path = tmp_path / "kp.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    gone = subprocess.run([sys.executable, "-c", _OWN_A_RUN, str(path), "exit"], capture_output=True, text=True,
                          env=env, check=True).stdout.strip()
    holder = subprocess.Popen([sys.executable, "-c", _OWN_A_RUN, str(path), "hold"], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        store = Store(path, readonly=True)
        assert store.run(gone).shown_status() == INTERRUPTED_GONE
        assert store.run(held).shown_status() == "running"
        proc = kpmobile("runs", "list", "--db", str(path))
        assert INTERRUPTED_GONE in proc.stdout
        with pytest.raises(RunBusy, match=f"pid {holder.pid} on"):
            Store(path).claim_run(held)
        Store(path).claim_run(gone)  # the dead one is taken over
        assert Store(path).run(gone).pid == os.getpid()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while Store(path, readonly=True).run(held).shown_status() != INTERRUPTED_GONE:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_imports_typed_models_name_exactly_the_stored_rows_fields() -> None:
    # RunRow/CaseRow (what the store reads back) and RunDoc/CaseDoc (what `runs import` validates, with ranges
    # and patterns) are two typed views of one row; kept apart on purpose, they must not drift.
    import dataclasses

    from kpmobile.store.db import CaseRow, RunRow
    from kpmobile.store.models import CaseDoc, RunDoc

    assert {f.name for f in dataclasses.fields(RunRow)} == set(RunDoc.model_fields)
    assert {f.name for f in dataclasses.fields(CaseRow)} - {"id"} == set(CaseDoc.model_fields)
