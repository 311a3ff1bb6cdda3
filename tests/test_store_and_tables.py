"""The SQLite store and the pure mobile-table renderer."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpmobile.envcheck import check_numpy
from kpmobile.errors import ConfigError, EnvironmentProblem
from kpmobile.records import BenchCase
from kpmobile.report.mobile import mobile_table
from kpmobile.report.table import Table, to_csv, to_json, to_markdown
from kpmobile.store import Store
from kpmobile.sweep.plan import plan_cases, remaining

PLAN = {
    "models": {"pp-tinypose-128x96": {"display": "PP-TinyPose-128x96 (pose)"},
               "picodet-s-192": {"display": "PicoDet-s-192x192 (det)"}},
    "devices": {"fpA": {"label": "Kirin 980", "serial": "A"}, "fpB": {"label": "Qualcomm Snapdragon 660",
                                                                       "serial": "B"}},
    "threads": [1, 4],
}


def _fill(store: Store) -> str:
    run = store.new_run("test", PLAN)
    value = 10.0
    for case in plan_cases([str(m) for m in PLAN["models"]], ["fpA", "fpB"], [1, 4]):
        if case.model == "picodet-s-192" and case.device == "fpB" and case.threads == 4:
            store.add_case(run, case, serial="B", status="failed", error="runner exited 139")
            continue
        store.add_case(run, case, serial=case.device[-1], status="ok", numbers={"avg_ms": value},
                       raw_log="log text")
        value += 1.5
    return run


def test_store_keeps_every_case_and_reopens(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = Store(db)
    run = _fill(store)
    store.close()
    again = Store(db)
    rows = again.cases(run)
    assert len(rows) == 8
    assert sum(r.status == "ok" for r in rows) == 7
    assert all(r.raw_log == "log text" for r in rows if r.status == "ok")
    assert len(again.done_keys(run)) == 7
    assert again.run().id == run


def test_resume_plan_skips_done_cases(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    run = _fill(store)
    cases = plan_cases([str(m) for m in PLAN["models"]], ["fpA", "fpB"], [1, 4])
    todo = remaining(cases, store.done_keys(run))
    assert [(c.model, c.device, c.threads) for c in todo] == [("picodet-s-192", "fpB", 4)]


def test_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with pytest.raises(ConfigError, match="holds no run"):
        store.run()
    with pytest.raises(ConfigError, match="no run 'nope'"):
        store.run("nope")


def test_mobile_table_layout_matches_the_seed(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    run = _fill(store)
    table = mobile_table(PLAN, store.cases(run))
    assert table.header == (
        "Model", "Kirin 980 (1-thread)", "Kirin 980 (4-threads)",
        "Qualcomm Snapdragon 660 (1-thread)", "Qualcomm Snapdragon 660 (4-threads)",
    )
    one = " (1 round)"  # issue 15: a cell of one round says so
    assert table.rows[0] == ("PP-TinyPose-128x96 (pose)", f"10.00 ms{one}", f"11.50 ms{one}", f"16.00 ms{one}",
                             f"17.50 ms{one}")
    assert table.rows[1] == ("PicoDet-s-192x192 (det)", f"13.00 ms{one}", f"14.50 ms{one}", f"19.00 ms{one}", "failed")
    md = to_markdown(table)
    assert md.splitlines()[0].startswith("| Model | Kirin 980 (1-thread) |")
    assert "| PicoDet-s-192x192 (det) | 13.00 ms (1 round) |" in md
    assert to_csv(table).splitlines()[1].startswith("PP-TinyPose-128x96 (pose),10.00 ms (1 round)")


def test_case_key_distinguishes_rounds_and_threads() -> None:
    a = BenchCase("m", "fp", 1)
    assert a.key() != BenchCase("m", "fp", 4).key()
    assert a.key() != BenchCase("m", "fp", 1, round=1).key()
    assert a.key() == BenchCase("m", "fp", 1).key()


def test_numpy_2_beside_paddlelite_is_refused() -> None:
    with pytest.raises(EnvironmentProblem, match="numpy 2.1.0"):
        check_numpy("2.1.0", "2.13rc0")
    check_numpy("1.23.5", "2.13rc0")
    check_numpy("2.1.0", "")  # no paddlelite: nothing to protect


def test_table_to_json_is_plain_json_with_cells_and_notes() -> None:
    import json

    table = Table("T", ("Model", "a"), (("m", "1.0 ms"),), [{"model": "m", "avg_ms": 1.0}], ("note",))
    data = to_json(table)
    assert data == {"title": "T", "header": ["Model", "a"], "rows": [["m", "1.0 ms"]],
                    "cells": [{"model": "m", "avg_ms": 1.0}], "notes": ["note"]}
    assert json.loads(json.dumps(data)) == data
