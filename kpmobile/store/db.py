"""The SQLite store: every case is written (and committed) the moment it finishes."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpmobile import __version__
from kpmobile.errors import ConfigError, KpError
from kpmobile.owner import Owner, alive, this_process
from kpmobile.records import BenchCase, CaseExtra, DeviceInfo, RunPlan
from kpmobile.store import schema
from kpmobile.store.errors import StoreError, StoreReadOnly, store_error
from kpmobile.store.ops import OpStoreMixin
from kpmobile.store.runid import check_run_id

SCHEMA_VERSION = schema.SCHEMA_VERSION
INTERRUPTED_GONE = "interrupted (process gone)"


def busy_timeout_s() -> float:
    """Give how long a write waits for another process's lock ($KPMOBILE_BUSY_TIMEOUT_S, default 30 s)."""
    try:
        return max(0.0, float(os.environ.get("KPMOBILE_BUSY_TIMEOUT_S", "30")))
    except ValueError:
        return 30.0


def _referring(db: sqlite3.Connection, table: str) -> list[tuple[str, str, str]]:
    """Give (table, its column, `table`'s column) for every foreign key of the store that points at `table`."""
    names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [(name, str(fk[3]), str(fk[4] or "rowid")) for name in names
            for fk in db.execute(f'PRAGMA foreign_key_list("{name}")') if fk[2] == table and name != table]


def _delete_with_dependents(db: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...]) -> None:
    """Delete the rows of `table` that match, after every row that refers to them (samples, op profiles and
    their kernels, whatever a later schema step adds with a foreign key): a run leaves nothing behind."""
    for child, column, key in _referring(db, table):
        _delete_with_dependents(db, child, f'"{column}" IN (SELECT "{key}" FROM "{table}" WHERE {where})', args)
    db.execute(f'DELETE FROM "{table}" WHERE {where}', args)


@dataclass(frozen=True)
class RunRow:
    """One sweep as stored; `pid`/`pid_start` on `host` name the process that runs (or ran) it."""

    id: str
    started: float
    finished: float | None
    status: str
    command: str
    host: str
    kpmobile_version: str
    plan: RunPlan
    pid: int | None = None
    pid_start: int | None = None
    error: str | None = None  # why the run stopped (failed or interrupted)

    @property
    def owner(self) -> Owner | None:
        """Give the process that holds the run, when it was recorded."""
        return None if self.pid is None else Owner(self.host, self.pid, self.pid_start)

    def shown_status(self) -> str:
        """Give the status to show: a "running" run whose process is gone is interrupted."""
        if self.status == "running" and self.owner is not None and alive(self.owner) is False:
            return INTERRUPTED_GONE
        if self.status == "interrupted" and self.error:
            return f"interrupted ({self.error})"
        return self.status


@dataclass(frozen=True)
class CaseRow:
    """One attempt at a case as stored; `started`/`created` stamp its start and end."""

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
    attempt: int = 1
    started: float | None = None
    samples_ms: tuple[float, ...] = ()  # per-iteration times (the samples table), () where the runner printed none

    @property
    def case_extra(self) -> CaseExtra:
        """Give the case's extra as a typed record."""
        return CaseExtra.from_json(self.extra)


_CASE_FIELDS = tuple(CaseRow.__dataclass_fields__)
_RUN_FIELDS = tuple(RunRow.__dataclass_fields__)


WAL_AUTOCHECKPOINT = 4  # pages: a small WAL, checkpointed after (nearly) every commit


class _Checkpointer:
    """A thread with its own connection that checkpoints the WAL (PASSIVE: it never blocks a writer
    or a reader, and gives up on a locked store) each time a commit pokes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="store-checkpoint")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def poke(self) -> None:
        """Ask for one checkpoint soon."""
        self._wake.set()

    def stop(self) -> None:
        """Give nothing once a last checkpoint ran and the thread ended."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(str(self.path), timeout=0.1, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # locked or full: the next commit pokes again; the case itself is stored
                if self._stopping:
                    return
        finally:
            db.close()


class Store(OpStoreMixin):
    """A SQLite file holding runs, devices and cases; safe to share between worker threads.

    `readonly=True` opens it with URI mode=ro (for the commands that only read): nothing is
    written, so a read-only store reads. A writable open checks the file before any write: it
    must be absent, empty or a kpmobile store of this or an older version (migrated then).
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._checkpointer: _Checkpointer | None = None
        timeout = busy_timeout_s()
        if readonly:
            self._db = self._open_readonly(timeout)
        else:
            self._db = self._open_writable(timeout)

    def _open_readonly(self, timeout: float) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ConfigError(f"no store at {self.path}", "run `kpmobile bench` first, or pass --db")
        try:
            db = schema.connect(self.path, readonly=True, timeout=timeout)
            schema.check_version(schema.stored_version(db, self.path), self.path)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        return db

    def _open_writable(self, timeout: float) -> sqlite3.Connection:
        schema.check_before_write(self.path, timeout)
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreReadOnly(f"store {self.path} is read-only",
                                "read it with `kpmobile runs`/`report`, or pass a writable --db")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = schema.connect(self.path, readonly=False, timeout=timeout)
            db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            # Migrate before WAL: a new store's schema then goes straight into the file (its rollback
            # journal holds no old pages), not into a WAL as large again, so a 200 KB disk holds it.
            # (An existing store keeps the WAL mode it was left in.)
            schema.migrate(db, self.path)
            db.execute("PRAGMA journal_mode=WAL")
            # A commit is then durable once in the WAL file, without an fsync per case (~5 ms here);
            # a crashed or killed kpmobile loses nothing, only a power cut can lose the last cases.
            db.execute("PRAGMA synchronous=NORMAL")
            # A small WAL, checkpointed often: a store on a small disk grows by its cases, not by 4 MB of log.
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            db.execute("PRAGMA journal_size_limit=16384")
        except OSError as exc:
            raise StoreReadOnly(f"cannot create store {self.path}: {exc.strerror or exc}",
                                "pass a --db in a writable folder") from exc
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        return db

    def close(self) -> None:
        """Close the connection (after the background checkpoints, if any, have stopped)."""
        self.checkpoint_inline()
        with self._lock:
            self._db.close()

    def checkpoint_in_background(self) -> None:
        """Checkpoint the WAL in a thread of its own from now on, not inside each commit: a checkpoint
        syncs the WAL and the store to disk (two fsyncs, 5-80 ms here), which a sweep's case store
        should not wait for. Every commit still wakes one checkpoint at once, so the WAL stays as small
        as before (a store on a small disk grows by its cases, not by its log); a commit is as durable
        as before (synchronous=NORMAL: in the WAL). `checkpoint_inline()` (or close) goes back."""
        if self.readonly or self._checkpointer is not None:
            return
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(self.path)
        self._checkpointer.start()

    def checkpoint_inline(self) -> None:
        """Stop the background checkpoints (after a last one) and checkpoint inside commits again."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is None:
            return
        checkpointer.stop()
        with self._lock:
            try:
                self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            except sqlite3.Error:
                pass  # a closed or broken connection checkpoints nothing either way

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise store_error(self.path, exc) from exc

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Give the connection inside one write transaction (committed on exit, StoreError on failure)."""
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Give the connection inside one IMMEDIATE transaction, committed on exit; sqlite errors -> StoreError."""
        if self.readonly:
            raise StoreReadOnly(f"store {self.path} was opened read-only", "report this as a kpmobile bug")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                    if self._checkpointer is not None:
                        self._checkpointer.poke()
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise store_error(self.path, exc) from exc

    # runs -------------------------------------------------------------------------------
    def new_run(self, command: str, plan: RunPlan | Mapping[str, Any], run_id: str | None = None) -> str:
        """Give the id of a newly created run (status "running"), owned by this process."""
        plan = RunPlan.of(plan)
        run_id = check_run_id(run_id) if run_id else new_run_id()
        me = this_process()
        with self._write() as db:
            db.execute(
                "INSERT INTO runs(id, started, status, command, host, kpmobile_version, plan, pid, pid_start)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (run_id, time.time(), command, me.host, __version__, json.dumps(plan.to_json()), me.pid, me.start),
            )
        return run_id

    def claim_run(self, run_id: str) -> RunRow:
        """Give the run `run_id`, now owned by this process; refused while another live process runs it."""
        me = this_process()
        with self._write() as db:
            run = _run_row(db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone(), self.path, run_id)
            if held_by_another(run):
                raise RunBusy(f"run {run_id} is being run by {busy_owner(run)}",
                              "wait for it to finish, or resume it from that host once it stops")
            db.execute("UPDATE runs SET status='running', finished=NULL, error=NULL, host=?, pid=?, pid_start=?"
                       " WHERE id=?", (me.host, me.pid, me.start, run_id))
        return run

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Mark a run finished with `status` (complete / interrupted / failed) and why it stopped."""
        with self._write() as db:
            db.execute("UPDATE runs SET finished=?, status=?, error=? WHERE id=?",
                       (time.time(), status, error, run_id))

    def reopen_run(self, run_id: str, plan: RunPlan) -> None:
        """Mark a resumed run running again, owned by this process, with its (possibly extended) plan.

        Refused (RunBusy, naming the process) while another live process runs it.
        """
        self.claim_run(run_id)
        self.set_plan(run_id, plan)

    def set_plan(self, run_id: str, plan: RunPlan | Mapping[str, Any]) -> None:
        """Replace a run's stored plan."""
        with self._write() as db:
            db.execute("UPDATE runs SET plan=? WHERE id=?", (json.dumps(RunPlan.of(plan).to_json()), run_id))

    def run(self, run_id: str | None = None) -> RunRow:
        """Give one run (the latest when `run_id` is None), or fail naming the fix."""
        with self._read() as db:
            if run_id is None:
                row = db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return _run_row(row, self.path, run_id)

    def runs(self) -> list[RunRow]:
        """Give every run, oldest first."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY started").fetchall()
        return [_run_row(r, self.path, None) for r in rows]

    def delete_run(self, run_id: str) -> int:
        """Delete a run and its cases; give the number of case rows removed. A live run is refused."""
        run = self.run(run_id)
        if held_by_another(run):
            raise RunBusy(f"run {run_id} is being run by {busy_owner(run)}", "wait for it to finish")
        with self._write() as db:
            removed = db.execute("SELECT COUNT(*) FROM cases WHERE run_id=?", (run_id,)).fetchone()[0]
            _delete_with_dependents(db, "runs", "id = ?", (run_id,))
        return int(removed)

    # devices ----------------------------------------------------------------------------
    def upsert_device(self, info: DeviceInfo) -> None:
        """Record a device fingerprint and what it reported."""
        now = time.time()
        fp = info.fingerprint or info.serial
        with self._write() as db:
            db.execute(
                "INSERT INTO devices(fingerprint, serial, info, first_seen, last_seen) VALUES (?,?,?,?,?)"
                " ON CONFLICT(fingerprint) DO UPDATE SET serial=excluded.serial, info=excluded.info,"
                " last_seen=excluded.last_seen",
                (fp, info.serial, json.dumps(info.to_json()), now, now),
            )

    def devices(self) -> dict[str, dict[str, Any]]:
        """Give stored device info keyed by fingerprint (an entry that does not parse is left out)."""
        with self._read() as db:
            rows = db.execute("SELECT fingerprint, info FROM devices").fetchall()
        out = {}
        for fp, info in rows:
            value = _json(info, None)
            if isinstance(value, dict):
                out[str(fp)] = value
        return out

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
        started: float | None = None,
        samples: Sequence[float] | None = None,
    ) -> int:
        """Store one attempt at a case as its own row and commit at once; give its row id.

        Earlier attempts are kept: a row stored ok is never replaced.
        """
        values = case_values(run_id, case, serial=serial, status=status, numbers=numbers, error=error,
                             record=record, raw_log=raw_log, model_hash=model_hash, artifact_hash=artifact_hash,
                             runner=runner, runner_version=runner_version, extra=extra, started=started)
        if samples is not None:  # default: the record's samples_ms
            values["samples_ms"] = [float(v) for v in samples]
        return self.insert_case(values)

    def insert_case(self, values: dict[str, Any]) -> int:
        """Store a case row given as column values (from `case_values` or a journal); give its row id."""
        columns = [k for k in _CASE_FIELDS if k not in ("id", "attempt", "samples_ms")]
        samples = values.get("samples_ms")
        if samples is None:
            samples = (_json(values.get("record"), None) or {}).get("samples_ms") or ()
        with self._write() as db:
            row = db.execute("SELECT COALESCE(MAX(attempt), 0) + 1 FROM cases WHERE run_id=? AND case_key=?",
                             (values["run_id"], values["case_key"])).fetchone()
            cur = db.execute(
                f"INSERT INTO cases({', '.join(columns)}, attempt) VALUES ({', '.join('?' for _ in columns)}, ?)",
                [values.get(k) for k in columns] + [int(row[0])],
            )
            case_id = int(cur.lastrowid or 0)
            add_samples(db, case_id, samples)
            return case_id

    def attempts(self, run_id: str) -> list[CaseRow]:
        """Give every attempt at a run's cases, in the order they were stored."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM cases WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
            samples = _samples(db, "SELECT s.case_id, s.ms FROM samples s JOIN cases c ON c.id = s.case_id"
                                   " WHERE c.run_id=? ORDER BY s.case_id, s.idx", (run_id,))
        return [_case_row(r, samples.get(int(r["id"]), ())) for r in rows]

    def cases(self, run_id: str, status: str | None = None) -> list[CaseRow]:
        """Give a run's cases, one row per case: its first ok attempt, else its latest; in stored order."""
        best = best_attempts(self.attempts(run_id))
        return [c for c in best if status is None or c.status == status]

    def done_keys(self, run_id: str) -> set[str]:
        """Give the keys of a run's cases that finished successfully (resume skips them)."""
        with self._read() as db:
            rows = db.execute("SELECT case_key FROM cases WHERE run_id=? AND status='ok'", (run_id,)).fetchall()
        return {r[0] for r in rows}

    def count_cases(self) -> int:
        """Give the number of stored case rows across all runs."""
        with self._read() as db:
            return int(db.execute("SELECT COUNT(*) FROM cases").fetchone()[0])

    def iter_all_cases(self) -> Iterator[CaseRow]:
        """Give every stored case row."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM cases ORDER BY id").fetchall()
            samples = _samples(db, "SELECT case_id, ms FROM samples ORDER BY case_id, idx", ())
        for r in rows:
            yield _case_row(r, samples.get(int(r["id"]), ()))


class RunBusy(StoreError):
    """Another live process runs the run."""


def held_by_another(run: RunRow) -> bool:
    """Tell whether another process that may still live (on this host, or any on another) runs `run`."""
    owner = run.owner
    if run.status != "running" or owner is None:
        return False
    if owner.host == this_process().host and owner.pid == os.getpid():
        return False
    return alive(owner) is not False


def busy_owner(run: RunRow) -> str:
    """Give "pid P on HOST" of the process that holds `run`."""
    return run.owner.describe() if run.owner is not None else "another process"


def new_run_id() -> str:
    """Give a fresh run id of the form kpmobile makes: YYYYMMDD-HHMMSS-xxxxxx."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def case_values(run_id: str, case: BenchCase, *, serial: str, status: str, numbers: dict[str, float | None] | None,
                error: str | None, record: dict[str, Any] | None, raw_log: str | None, model_hash: str | None,
                artifact_hash: str | None, runner: str | None, runner_version: str | None,
                extra: CaseExtra | Mapping[str, Any] | None, started: float | None) -> dict[str, Any]:
    """Give the column values of one case row (plain JSON types, so a journal can hold them)."""
    nums = numbers or {}
    return {
        "run_id": run_id, "case_key": case.key(), "device_fp": case.device, "serial": serial, "model": case.model,
        "model_hash": model_hash, "artifact_hash": artifact_hash, "runner": runner, "runner_version": runner_version,
        "backend": case.backend, "threads": case.threads, "power_mode": case.power_mode, "warmup": case.warmup,
        "repeats": case.repeats, "precision": case.precision, "batch": case.batch, "round": case.round,
        "pipeline": case.pipeline, "persons": case.persons, "status": status, "error": error,
        "avg_ms": nums.get("avg_ms"), "min_ms": nums.get("min_ms"), "max_ms": nums.get("max_ms"),
        "first_ms": nums.get("first_ms"), "init_ms": nums.get("init_ms"),
        "record": json.dumps(record) if record is not None else None, "raw_log": raw_log,
        "extra": json.dumps(extra.to_json() if isinstance(extra, CaseExtra) else dict(extra or {})),
        "created": time.time(), "started": started,
    }


def best_attempts(rows: list[CaseRow]) -> list[CaseRow]:
    """Give one row per case key: the first ok attempt, else the latest attempt; in stored order."""
    best: dict[str, CaseRow] = {}
    for row in rows:
        held = best.get(row.case_key)
        if held is None or (held.status != "ok" and (row.status == "ok" or row.attempt > held.attempt)):
            best[row.case_key] = row
    return sorted(best.values(), key=lambda c: c.id)


def _json(text: Any, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _run_row(row: sqlite3.Row | None, path: Path, run_id: str | None) -> RunRow:
    if row is None:
        if run_id is None:
            raise ConfigError(f"the store {path} holds no run yet", "run `kpmobile bench` first")
        raise ConfigError(f"no run '{run_id}' in {path}", "list runs with `kpmobile runs list`")
    keys = row.keys()
    values = {k: row[k] for k in _RUN_FIELDS if k in keys}
    values["plan"] = _plan(values.get("plan"))
    return RunRow(**values)


def _plan(text: Any) -> RunPlan:
    """Give a stored plan; one of the wrong shape (a tampered or damaged row) reads as empty."""
    data = _json(text, {})
    if not isinstance(data, dict):
        return RunPlan()
    try:
        return RunPlan.from_json(data)
    except KpError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError):
        return RunPlan()


def add_samples(db: sqlite3.Connection, case_id: int, samples: Sequence[float]) -> None:
    """Give nothing: store a case's per-iteration times (inside the caller's transaction)."""
    db.executemany("INSERT OR REPLACE INTO samples(case_id, idx, ms) VALUES (?,?,?)",
                   [(case_id, i, float(v)) for i, v in enumerate(samples)])


def _samples(db: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> dict[int, tuple[float, ...]]:
    out: dict[int, list[float]] = {}
    for case_id, ms in db.execute(query, args):
        out.setdefault(int(case_id), []).append(float(ms))
    return {k: tuple(v) for k, v in out.items()}


def _case_row(r: sqlite3.Row, samples: tuple[float, ...] = ()) -> CaseRow:
    keys = r.keys()
    values = {k: r[k] for k in _CASE_FIELDS if k in keys}
    values["samples_ms"] = samples
    record = _json(values.get("record"), None)
    extra = _json(values.get("extra"), {})
    values["record"] = record if isinstance(record, dict) else None
    values["extra"] = extra if isinstance(extra, dict) else {}
    return CaseRow(**values)
