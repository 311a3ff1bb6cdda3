"""The store's layout, its versions, and the checks made before kpmobile writes to a file.

`MIGRATIONS[i]` takes a store from version i to i + 1 (version 0: an empty file). A fresh store
runs every step; an older one runs the steps it lacks. To change the layout, append a step and
nothing else: `SCHEMA_VERSION` follows the list.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from kpmobile.store.errors import NotAStore, StoreCorrupt, StoreTooNew, store_error

_V1 = """
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

_CASE_COLUMNS_V1 = (
    "id, run_id, case_key, device_fp, serial, model, model_hash, artifact_hash, runner, runner_version, backend,"
    " threads, power_mode, warmup, repeats, precision, batch, round, pipeline, persons, status, error, avg_ms,"
    " min_ms, max_ms, first_ms, init_ms, record, raw_log, extra, created"
)

# v4: the run's owner (pid and its start time; `host` already names the CLI's host) and why it
# stopped; each attempt at a case is its own row (a stored ok row is never replaced) with its start stamp.
_V2_CASES = f"""
CREATE TABLE cases_v2 (
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
    extra TEXT NOT NULL DEFAULT '{{}}',
    created REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    started REAL,
    UNIQUE (run_id, case_key, attempt)
);
INSERT INTO cases_v2 ({_CASE_COLUMNS_V1}) SELECT {_CASE_COLUMNS_V1} FROM cases;
DROP TABLE cases;
ALTER TABLE cases_v2 RENAME TO cases;
CREATE INDEX IF NOT EXISTS cases_run ON cases(run_id);
"""

Migration = Callable[[sqlite3.Connection], None]


def _script(sql: str) -> Migration:
    def step(db: sqlite3.Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)

    return step


def add_column(db: sqlite3.Connection, table: str, column: str, kind: str) -> None:
    """Add a column unless the table has it (some 0.1 stores already carry runs.error)."""
    if column not in {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


# v2 (i15): per-iteration times of a case, as the runner printed them (benchmark_bin prints none).
_SAMPLES = """
CREATE TABLE IF NOT EXISTS samples (
    case_id INTEGER NOT NULL REFERENCES cases(id),
    idx INTEGER NOT NULL,
    ms REAL NOT NULL,
    PRIMARY KEY (case_id, idx)
);
"""


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Add the samples table and fill it from the samples_ms of stored records."""
    _script(_SAMPLES)(db)
    for case_id, record in db.execute("SELECT id, record FROM cases WHERE record LIKE '%samples_ms%'").fetchall():
        values = (json.loads(record) or {}).get("samples_ms") or []
        db.executemany("INSERT OR IGNORE INTO samples(case_id, idx, ms) VALUES (?,?,?)",
                       [(case_id, i, float(v)) for i, v in enumerate(values)])


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """The op-profile tables of `bench --op-profile` (empty: older runs had none)."""
    from kpmobile.store.ops import OPS_SCHEMA

    _script(OPS_SCHEMA)(db)


def _v3_to_v4(db: sqlite3.Connection) -> None:
    """The run's owner and why it stopped; one row per attempt at a case."""
    _v2_to_v3(db)  # a store of the shared-bench branch's own v3 lacks the op tables
    for column, kind in (("pid", "INTEGER"), ("pid_start", "INTEGER"), ("error", "TEXT")):
        add_column(db, "runs", column, kind)
    if "attempt" not in {str(r[1]) for r in db.execute("PRAGMA table_info(cases)")}:
        _script(_V2_CASES)(db)


MIGRATIONS: list[Migration] = [_script(_V1), _v1_to_v2, _v2_to_v3, _v3_to_v4]
SCHEMA_VERSION = len(MIGRATIONS)
MARKER = ("app", "kpmobile")


def connect(path: Path, *, readonly: bool, timeout: float) -> sqlite3.Connection:
    """Give a connection to the store at `path`; read-only ones use URI mode=ro (immutable on read-only media)."""
    if not readonly:
        db = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
    else:
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # WAL needs a -shm file beside the store; on read-only media nobody can write it anyway.
            db = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, check_same_thread=False,
                                 isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def stored_version(db: sqlite3.Connection, path: Path) -> int:
    """Give the schema version of the kpmobile store behind `db` (0: an empty file); NotAStore otherwise."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in tables else None
    if row is None or not {"runs", "cases"} <= tables or not str(row[0]).isdigit():
        raise NotAStore(f"{path} is an SQLite file of another application (no kpmobile tables)",
                        "pass another --db path; kpmobile did not write to it")
    return int(row[0])


def check_before_write(path: Path, timeout: float) -> int:
    """Give the version of the store at `path` (0: none yet), read without writing a byte.

    Refuses another application's file, a store of a newer kpmobile and a corrupt store.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        db = connect(path, readonly=True, timeout=timeout)
        try:
            version = stored_version(db, path)
            _check_pages(db, path)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise store_error(path, exc) from exc
    check_version(version, path)
    return version


def check_version(version: int, path: Path) -> None:
    """Refuse a store written by a newer kpmobile."""
    if version > SCHEMA_VERSION:
        raise StoreTooNew(f"store {path} has schema version {version}, newer than this kpmobile reads "
                          f"({SCHEMA_VERSION})", "upgrade kpmobile on this host, or pass another --db")


def _check_pages(db: sqlite3.Connection, path: Path) -> None:
    result = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
    if result != ["ok"]:
        raise StoreCorrupt(f"store {path} is corrupt ({'; '.join(map(str, result))})",
                           "restore it from a backup (or `runs export` what still reads), or pass another --db")


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store behind `db` to SCHEMA_VERSION in one transaction (a no-op when it is there)."""
    if stored_version(db, path) == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = stored_version(db, path)  # read again under the write lock: another process may have migrated
        check_version(version, path)
        for step in MIGRATIONS[version:]:
            step(db)
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", MARKER)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
