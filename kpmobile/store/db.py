"""The SQLite store: every case is written (and committed) the moment it finishes."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kpmobile import __version__
from kpmobile.errors import ConfigError
from kpmobile.records import BenchCase, CaseExtra, DeviceInfo, RunPlan
from kpmobile.store.ops import OPS_SCHEMA, OpStoreMixin

SCHEMA_VERSION = 3  # 2: the samples table; 3: op profiles (op_profiles, op_times)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    command TEXT NOT NULL,
    host TEXT NOT NULL,
    kpmobile_version TEXT NOT NULL,
    plan TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS devices (
    fingerprint TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    info TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    case_key TEXT NOT NULL,
    device_fp TEXT NOT NULL,
    serial TEXT NOT NULL,
    model TEXT NOT NULL,
    model_hash TEXT,
    artifact_hash TEXT,
    runner TEXT,
    runner_version TEXT,
    backend TEXT NOT NULL,
    threads INTEGER NOT NULL,
    power_mode INTEGER NOT NULL,
    warmup INTEGER NOT NULL,
    repeats INTEGER NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    round INTEGER NOT NULL,
    pipeline TEXT,
    persons INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    avg_ms REAL,
    min_ms REAL,
    max_ms REAL,
    first_ms REAL,
    init_ms REAL,
    record TEXT,
    raw_log TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    UNIQUE (run_id, case_key)
);
CREATE INDEX IF NOT EXISTS cases_run ON cases(run_id);
"""

# Per-iteration times of a case, as the runner printed them (kpmobile's runners; benchmark_bin prints none).
_SAMPLES_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    case_id INTEGER NOT NULL REFERENCES cases(id),
    idx INTEGER NOT NULL,
    ms REAL NOT NULL,
    PRIMARY KEY (case_id, idx)
);
"""


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: add the samples table and fill it from the samples_ms of stored records."""
    db.executescript(_SAMPLES_SCHEMA)
    for case_id, record in db.execute("SELECT id, record FROM cases WHERE record LIKE '%samples_ms%'").fetchall():
        values = (json.loads(record) or {}).get("samples_ms") or []
        db.executemany("INSERT OR IGNORE INTO samples(case_id, idx, ms) VALUES (?,?,?)",
                       [(case_id, i, float(v)) for i, v in enumerate(values)])


# version N -> N + 1, run in order on a store of an older version
def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3: add the op-profile tables of `bench --op-profile` (empty: older runs had none)."""
    db.executescript(OPS_SCHEMA)


MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def _open_schema(db: sqlite3.Connection) -> None:
    """Create the tables of a new store, or bring an older store up to SCHEMA_VERSION."""
    db.executescript(_SCHEMA)
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = int(row[0]) if row else SCHEMA_VERSION
    if not row:
        db.executescript(_SAMPLES_SCHEMA)
        db.executescript(OPS_SCHEMA)
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](db)
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
               (str(max(version, SCHEMA_VERSION)),))


@dataclass(frozen=True)
class RunRow:
    """One sweep as stored."""

    id: str
    started: float
    finished: float | None
    status: str
    command: str
    host: str
    kpmobile_version: str
    plan: RunPlan
    error: str | None = None  # why a failed run stopped


@dataclass(frozen=True)
class CaseRow:
    """One finished (or failed) case as stored."""

    id: int
    run_id: str
    case_key: str
    device_fp: str
    serial: str
    model: str
    model_hash: str | None
    artifact_hash: str | None
    runner: str | None
    runner_version: str | None
    backend: str
    threads: int
    power_mode: int
    warmup: int
    repeats: int
    precision: str
    batch: int
    round: int
    pipeline: str | None
    persons: int | None
    status: str
    error: str | None
    avg_ms: float | None
    min_ms: float | None
    max_ms: float | None
    first_ms: float | None
    init_ms: float | None
    record: dict[str, Any] | None
    raw_log: str | None
    extra: dict[str, Any]
    created: float
    samples_ms: tuple[float, ...] = ()  # per-iteration times (the samples table), () where the runner printed none

    @property
    def case_extra(self) -> CaseExtra:
        """Give the case's extra as a typed record."""
        return CaseExtra.from_json(self.extra)


class Store(OpStoreMixin):
    """A SQLite file holding runs, devices and cases; safe to share between worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit is then durable once in the WAL file, without an fsync per case (~5 ms here);
            # a crashed or killed kpmobile loses nothing, only a power cut can lose the last cases.
            self._db.execute("PRAGMA synchronous=NORMAL")
            _open_schema(self._db)
            self._db.row_factory = sqlite3.Row
            columns = {str(r["name"]) for r in self._db.execute("PRAGMA table_info(runs)")}
            if "error" not in columns:  # stores written before runs kept their failure reason
                self._db.execute("ALTER TABLE runs ADD COLUMN error TEXT")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"store {self.path} is not a kpmobile SQLite store ({exc})",
                              "pass another --db path or move the file away") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # runs -------------------------------------------------------------------------------
    def new_run(self, command: str, plan: RunPlan | Mapping[str, Any], run_id: str | None = None) -> str:
        """Give the id of a newly created run (status "running")."""
        plan = RunPlan.of(plan)
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._lock:
            self._db.execute(
                "INSERT INTO runs(id, started, status, command, host, kpmobile_version, plan)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (run_id, time.time(), command, socket.gethostname(), __version__, json.dumps(plan.to_json())),
            )
            self._db.commit()
        return run_id

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Mark a run finished with `status` (complete / partial / interrupted / failed) and why it failed."""
        with self._lock:
            self._db.execute("UPDATE runs SET finished=?, status=?, error=? WHERE id=?",
                             (time.time(), status, error, run_id))
            self._db.commit()

    def reopen_run(self, run_id: str, plan: RunPlan) -> None:
        """Mark a resumed run running again, with its (possibly extended) plan."""
        with self._lock:
            self._db.execute("UPDATE runs SET finished=NULL, status='running', error=NULL, plan=? WHERE id=?",
                             (json.dumps(plan.to_json()), run_id))
            self._db.commit()

    def set_plan(self, run_id: str, plan: RunPlan | Mapping[str, Any]) -> None:
        """Replace a run's stored plan."""
        with self._lock:
            self._db.execute("UPDATE runs SET plan=? WHERE id=?", (json.dumps(RunPlan.of(plan).to_json()), run_id))
            self._db.commit()

    def run(self, run_id: str | None = None) -> RunRow:
        """Give one run (the latest when `run_id` is None), or fail naming the fix."""
        with self._lock:
            if run_id is None:
                row = self._db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            if run_id is None:
                raise ConfigError(f"the store {self.path} holds no run yet", "run `kpmobile bench` first")
            raise ConfigError(f"no run '{run_id}' in {self.path}", "list runs with `kpmobile runs list`")
        return _run_row(row)

    def runs(self) -> list[RunRow]:
        """Give every run, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM runs ORDER BY started").fetchall()
        return [_run_row(r) for r in rows]

    # devices ----------------------------------------------------------------------------
    def upsert_device(self, info: DeviceInfo) -> None:
        """Record a device fingerprint and what it reported."""
        now = time.time()
        fp = info.fingerprint or info.serial
        with self._lock:
            self._db.execute(
                "INSERT INTO devices(fingerprint, serial, info, first_seen, last_seen) VALUES (?,?,?,?,?)"
                " ON CONFLICT(fingerprint) DO UPDATE SET serial=excluded.serial, info=excluded.info,"
                " last_seen=excluded.last_seen",
                (fp, info.serial, json.dumps(info.to_json()), now, now),
            )
            self._db.commit()

    def devices(self) -> dict[str, dict[str, Any]]:
        """Give stored device info keyed by fingerprint."""
        with self._lock:
            rows = self._db.execute("SELECT fingerprint, info FROM devices").fetchall()
        return {str(r["fingerprint"]): json.loads(r["info"]) for r in rows}

    # cases ------------------------------------------------------------------------------
    def add_case(
        self,
        run_id: str,
        case: BenchCase,
        *,
        serial: str,
        status: str,
        numbers: dict[str, float | None] | None = None,
        error: str | None = None,
        record: dict[str, Any] | None = None,
        raw_log: str | None = None,
        model_hash: str | None = None,
        artifact_hash: str | None = None,
        runner: str | None = None,
        runner_version: str | None = None,
        extra: CaseExtra | Mapping[str, Any] | None = None,
        samples: Sequence[float] | None = None,
    ) -> int:
        """Store one case and its per-iteration samples (default: the record's samples_ms), commit at once;
        give its row id."""
        nums = numbers or {}
        if samples is None:
            samples = (record or {}).get("samples_ms") or ()
        with self._lock:
            self._db.execute("DELETE FROM samples WHERE case_id IN (SELECT id FROM cases WHERE run_id=? AND"
                             " case_key=?)", (run_id, case.key()))
            cur = self._db.execute(
                "INSERT OR REPLACE INTO cases(run_id, case_key, device_fp, serial, model, model_hash,"
                " artifact_hash, runner, runner_version, backend, threads, power_mode, warmup, repeats,"
                " precision, batch, round, pipeline, persons, status, error, avg_ms, min_ms, max_ms,"
                " first_ms, init_ms, record, raw_log, extra, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, case.key(), case.device, serial, case.model, model_hash, artifact_hash,
                    runner, runner_version, case.backend, case.threads, case.power_mode, case.warmup,
                    case.repeats, case.precision, case.batch, case.round, case.pipeline, case.persons,
                    status, error, nums.get("avg_ms"), nums.get("min_ms"), nums.get("max_ms"),
                    nums.get("first_ms"), nums.get("init_ms"),
                    json.dumps(record) if record is not None else None, raw_log,
                    json.dumps(extra.to_json() if isinstance(extra, CaseExtra) else dict(extra or {})), time.time(),
                ),
            )
            case_id = int(cur.lastrowid or 0)
            add_samples(self._db, case_id, samples)
            self._db.commit()
            return case_id

    def cases(self, run_id: str, status: str | None = None) -> list[CaseRow]:
        """Give a run's cases in the order they were stored."""
        query = "SELECT * FROM cases WHERE run_id=?"
        args: tuple[Any, ...] = (run_id,)
        if status is not None:
            query += " AND status=?"
            args = (run_id, status)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
            samples = self._samples("SELECT s.case_id, s.ms FROM samples s JOIN cases c ON c.id = s.case_id"
                                    " WHERE c.run_id=? ORDER BY s.case_id, s.idx", (run_id,))
        return [_case_row(r, samples.get(int(r["id"]), ())) for r in rows]

    def _samples(self, query: str, args: tuple[Any, ...]) -> dict[int, tuple[float, ...]]:
        out: dict[int, list[float]] = {}
        for case_id, ms in self._db.execute(query, args):
            out.setdefault(case_id, []).append(float(ms))
        return {k: tuple(v) for k, v in out.items()}

    def done_keys(self, run_id: str) -> set[str]:
        """Give the keys of a run's cases that finished successfully (resume skips them)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT case_key FROM cases WHERE run_id=? AND status='ok'", (run_id,)
            ).fetchall()
        return {str(r["case_key"]) for r in rows}

    def count_cases(self) -> int:
        """Give the number of stored cases across all runs."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) AS n FROM cases").fetchone()["n"])

    def iter_all_cases(self) -> Iterator[CaseRow]:
        """Give every stored case."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM cases ORDER BY id").fetchall()
            samples = self._samples("SELECT case_id, ms FROM samples ORDER BY case_id, idx", ())
        for r in rows:
            yield _case_row(r, samples.get(int(r["id"]), ()))


def add_samples(db: sqlite3.Connection, case_id: int, samples: Sequence[float]) -> None:
    """Give nothing: store a case's per-iteration times (uncommitted)."""
    db.executemany("INSERT OR REPLACE INTO samples(case_id, idx, ms) VALUES (?,?,?)",
                   [(case_id, i, float(v)) for i, v in enumerate(samples)])


_CASE_COLUMNS = tuple(f.name for f in fields(CaseRow) if f.name != "samples_ms")
_RUN_COLUMNS = ("id", "started", "finished", "status", "command", "host", "kpmobile_version")


def _run_row(r: sqlite3.Row) -> RunRow:
    values: dict[str, Any] = {name: r[name] for name in _RUN_COLUMNS}
    return RunRow(**values, plan=RunPlan.from_json(json.loads(r["plan"] or "{}")),
                  error=r["error"] if "error" in r.keys() else None)


def _case_row(r: sqlite3.Row, samples: tuple[float, ...] = ()) -> CaseRow:
    values: dict[str, Any] = {name: r[name] for name in _CASE_COLUMNS}
    values["record"] = json.loads(values["record"]) if values["record"] else None
    values["extra"] = json.loads(values["extra"]) if values["extra"] else {}
    return CaseRow(**values, samples_ms=samples)
