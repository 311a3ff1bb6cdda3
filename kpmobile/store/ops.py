"""Per-operator times from a profiling runner: one `op_profiles` row per cell's extra invocation,
its kernels in `op_times`. Kept apart from `cases`, so they never mix with latency rounds."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields

from kpmobile.records import BenchCase, KernelTime

OPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS op_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    case_key TEXT NOT NULL,
    device_fp TEXT NOT NULL,
    serial TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    threads INTEGER NOT NULL,
    power_mode INTEGER NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    warmup INTEGER NOT NULL,
    repeats INTEGER NOT NULL,
    runner TEXT,
    status TEXT NOT NULL,
    error TEXT,
    source TEXT,
    avg_ms REAL,
    raw_log TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS op_profiles_run ON op_profiles(run_id);
CREATE TABLE IF NOT EXISTS op_times (
    profile_id INTEGER NOT NULL REFERENCES op_profiles(id),
    rank INTEGER NOT NULL,
    op_type TEXT NOT NULL,
    kernel TEXT NOT NULL,
    func TEXT NOT NULL,
    calls INTEGER NOT NULL,
    avg_ms REAL NOT NULL,
    min_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    share REAL NOT NULL,
    PRIMARY KEY (profile_id, rank)
);
"""


@dataclass(frozen=True)
class OpProfileRow:
    """One profiling invocation of a cell as stored, with its kernels slowest first."""

    id: int
    run_id: str
    case_key: str
    device_fp: str
    serial: str
    model: str
    backend: str
    threads: int
    power_mode: int
    precision: str
    batch: int
    warmup: int
    repeats: int
    runner: str | None
    status: str
    error: str | None
    source: str | None  # which profiler table the kernels come from
    avg_ms: float | None  # the profiling build's own avg (never a latency figure)
    raw_log: str | None
    created: float
    kernels: tuple[KernelTime, ...] = ()


class OpStoreMixin:
    """Store methods for op profiles (mixed into Store, which owns `_db` and `_lock`)."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def add_op_profile(self, run_id: str, case: BenchCase, *, serial: str, status: str,
                       kernels: Sequence[KernelTime] = (), source: str | None = None,
                       avg_ms: float | None = None, error: str | None = None,
                       runner: str | None = None, raw_log: str | None = None) -> int:
        """Store one cell's profiling invocation and its kernels in one transaction; give its id."""
        with self._lock:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            try:
                cur = self._db.execute(
                    "INSERT INTO op_profiles(run_id, case_key, device_fp, serial, model, backend, threads,"
                    " power_mode, precision, batch, warmup, repeats, runner, status, error, source, avg_ms,"
                    " raw_log, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, case.key(), case.device, serial, case.model, case.backend, case.threads,
                     case.power_mode, case.precision, case.batch, case.warmup, case.repeats, runner, status,
                     error, source, avg_ms, raw_log, time.time()))
                pid = int(cur.lastrowid or 0)
                self._db.executemany(
                    "INSERT INTO op_times(profile_id, rank, op_type, kernel, func, calls, avg_ms, min_ms,"
                    " max_ms, share) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(pid, rank, k.op_type, k.kernel, k.func, k.calls, k.avg_ms, k.min_ms, k.max_ms, k.share)
                     for rank, k in enumerate(kernels)])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return pid

    def op_profiles(self, run_id: str) -> list[OpProfileRow]:
        """Give a run's op profiles in the order they were stored, each with its kernels."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM op_profiles WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
            times = self._db.execute(
                "SELECT t.profile_id, t.op_type, t.kernel, t.func, t.calls, t.avg_ms, t.min_ms, t.max_ms, t.share"
                " FROM op_times t JOIN op_profiles p ON p.id = t.profile_id WHERE p.run_id=?"
                " ORDER BY t.profile_id, t.rank", (run_id,)).fetchall()
        kernels: dict[int, list[KernelTime]] = {}
        for t in times:
            kernels.setdefault(int(t[0]), []).append(KernelTime(*t[1:]))
        # sqlite3.Row by column name (as store/db.py reads): a table rebuilt in another column order reads the same.
        return [OpProfileRow(**{k: r[k] for k in _PROFILE_COLUMNS}, kernels=tuple(kernels.get(int(r["id"]), ())))
                for r in rows]


_PROFILE_COLUMNS = tuple(f.name for f in fields(OpProfileRow) if f.name != "kernels")
