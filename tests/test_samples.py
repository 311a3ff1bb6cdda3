"""Per-iteration samples: the samples table, its migration from schema 1, export/import (pure, real SQLite)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from kpmobile.records import BenchCase
from kpmobile.store import Store
from kpmobile.store.db import _SCHEMA
from kpmobile.store.exchange import export_run, import_run


def test_samples_are_stored_with_the_case_and_replaced_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "kp.db")
    run = store.new_run("test", {})
    case = BenchCase("m", "fp", 1)
    store.add_case(run, case, serial="s", status="ok", numbers={"avg_ms": 2.0},
                   record={"samples_ms": [1.0, 2.0, 3.0]})
    store.add_case(run, BenchCase("m", "fp", 4), serial="s", status="ok", numbers={"avg_ms": 1.0}, samples=[0.5])
    assert [c.samples_ms for c in store.cases(run)] == [(1.0, 2.0, 3.0), (0.5,)]
    store.add_case(run, case, serial="s", status="ok", numbers={"avg_ms": 5.0}, samples=[5.0, 5.5])  # a rerun
    assert sorted(c.samples_ms for c in store.cases(run)) == [(0.5,), (5.0, 5.5)]
    with sqlite3.connect(tmp_path / "kp.db") as db:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 3  # nothing left of the first try
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    assert [c.samples_ms for c in store.iter_all_cases()] == [(0.5,), (5.0, 5.5)]


def test_a_schema_1_store_gets_the_samples_table_filled_from_its_records(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a store as kpmobile wrote it before the samples table
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
        db.execute("INSERT INTO runs VALUES ('r1', 1.0, 2.0, 'complete', 'bench', 'h', '0.1', '{}')")
        for i, record in enumerate(({"samples_ms": [4.0, 4.5]}, {"notes": []}, None)):
            db.execute("INSERT INTO cases(run_id, case_key, device_fp, serial, model, backend, threads, power_mode,"
                       " warmup, repeats, precision, batch, round, status, avg_ms, record, created)"
                       " VALUES ('r1', ?, 'fp', 's', 'm', 'x86', 1, 0, 1, 2, 'fp32', 1, ?, 'ok', 4.25, ?, 1.0)",
                       (f"k{i}", i, None if record is None else json.dumps(record)))
    store = Store(path)
    assert [c.samples_ms for c in store.cases("r1")] == [(4.0, 4.5), (), ()]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    Store(path)  # opening again migrates nothing twice
    assert [c.samples_ms for c in Store(path).cases("r1")] == [(4.0, 4.5), (), ()]


def test_samples_travel_through_export_and_import(tmp_path: Path) -> None:
    src = Store(tmp_path / "a.db")
    run = src.new_run("test", {})
    src.add_case(run, BenchCase("m", "fp", 1), serial="s", status="ok", numbers={"avg_ms": 2.0}, samples=[1.5, 2.5])
    data = json.loads(json.dumps(export_run(src, run)))
    assert data["cases"][0]["samples_ms"] == [1.5, 2.5]
    dst = Store(tmp_path / "b.db")
    assert not import_run(dst, data).already_present
    assert [c.samples_ms for c in dst.cases(run)] == [(1.5, 2.5)]
    assert import_run(dst, data).already_present  # identical, samples included
