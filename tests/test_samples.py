"""Per-iteration samples: the samples table, its migration from schema 1, export/import (pure, real SQLite)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from kpmobile.records import BenchCase
from kpmobile.store import Store
from kpmobile.store.db import SCHEMA_VERSION
from kpmobile.store.exchange import export_run, import_run
from kpmobile.store.schema import _V1 as _SCHEMA  # the version-1 layout


def test_samples_are_stored_with_the_case_and_replaced_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "kp.db")
    run = store.new_run("test", {})
    case = BenchCase("m", "fp", 1)
    store.add_case(run, case, serial="s", status="ok", numbers={"avg_ms": 2.0},
                   record={"samples_ms": [1.0, 2.0, 3.0]})
    store.add_case(run, BenchCase("m", "fp", 4), serial="s", status="ok", numbers={"avg_ms": 1.0}, samples=[0.5])
    assert [c.samples_ms for c in store.cases(run)] == [(1.0, 2.0, 3.0), (0.5,)]
    store.add_case(run, case, serial="s", status="ok", numbers={"avg_ms": 5.0}, samples=[5.0, 5.5])  # a rerun
    # issue 14: each attempt is its own row with its own samples; the first ok row stays the evidence
    assert sorted(c.samples_ms for c in store.cases(run)) == [(0.5,), (1.0, 2.0, 3.0)]
    assert sorted(c.samples_ms for c in store.attempts(run)) == [(0.5,), (1.0, 2.0, 3.0), (5.0, 5.5)]
    with sqlite3.connect(tmp_path / "kp.db") as db:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 6
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert [c.samples_ms for c in store.iter_all_cases()] == [(1.0, 2.0, 3.0), (0.5,), (5.0, 5.5)]  # every attempt


def test_a_schema_1_store_gets_the_samples_table_filled_from_its_records(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a store as kpmobile wrote it before the samples table
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
        db.execute("INSERT INTO runs VALUES ('r1', 1.0, 2.0, 'complete', 'bench', 'h', '0.1', '{}')")
        records: tuple[dict[str, Any] | None, ...] = ({"samples_ms": [4.0, 4.5]}, {"notes": []}, None)
        for i, record in enumerate(records):
            db.execute("INSERT INTO cases(run_id, case_key, device_fp, serial, model, backend, threads, power_mode,"
                       " warmup, repeats, precision, batch, round, status, avg_ms, record, created)"
                       " VALUES ('r1', ?, 'fp', 's', 'm', 'x86', 1, 0, 1, 2, 'fp32', 1, ?, 'ok', 4.25, ?, 1.0)",
                       (f"k{i}", i, None if record is None else json.dumps(record)))
    store = Store(path)
    assert [c.samples_ms for c in store.cases("r1")] == [(4.0, 4.5), (), ()]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
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


NOT_APPLIED = "threads applied: no (x86 MobileConfig has no set_threads)"


def _x86_run(store: Store, rounds: int) -> str:
    plan = {"models": {"m": {"display": "M"}}, "threads": [1, 4],
            "devices": {"fpV": {"label": "Virtual phone"}, "fpA": {"label": "Kirin 980"}}}
    run = store.new_run("test", plan)
    for rnd in range(rounds):
        for t in (1, 4):
            samples = [10.0 + i / 10 + rnd / 100 for i in range(10)]  # 10.0 .. 10.9
            store.add_case(run, BenchCase("m", "fpV", t, backend="x86", round=rnd), serial="V", status="ok",
                           numbers={"avg_ms": sum(samples) / 10}, record={"notes": [NOT_APPLIED]}, samples=samples)
            store.add_case(run, BenchCase("m", "fpA", t, round=rnd), serial="A", status="ok",
                           numbers={"avg_ms": 20.0 / t + rnd * 0.01}, record={"notes": []})
    return run


def test_mobile_table_gives_p50_p90_rounds_and_the_threads_footnote(tmp_path: Path) -> None:
    from kpmobile.report.compare import rounds_table
    from kpmobile.report.mobile import THREADS_NOTE, mobile_table

    store = Store(tmp_path / "kp.db")
    run = _x86_run(store, 3)
    table = mobile_table(store.run(run).plan, store.cases(run))
    assert table.header == ("Model", "Virtual phone (1-thread) [1]", "Virtual phone (4-threads) [1]",
                            "Kirin 980 (1-thread)", "Kirin 980 (4-threads)")
    assert THREADS_NOTE in table.notes and any("mean ± std of 3 round(s)" in n for n in table.notes)
    v1, _, a1, _ = table.data
    assert (v1["threads_applied"], a1["threads_applied"]) == (False, None)  # benchmark_bin's log says nothing
    assert v1["samples"] == "iterations" and v1["n_samples"] == 30
    assert v1["p50_ms"] == pytest.approx(10.46, abs=0.01) and v1["p90_ms"] == pytest.approx(10.82, abs=0.01)
    p50_p90 = f"(p50 {v1['p50_ms']:.2f}, p90 {v1['p90_ms']:.2f})"
    assert table.rows[0][1] == f"{v1['mean_ms']:.2f} ± {v1['std_ms']:.2f} ms {p50_p90}"
    assert table.rows[0][3] == "20.01 ± 0.01 ms" and a1["samples"] == "rounds" and not a1["starred"]
    shown = rounds_table(store.run(run), store.cases(run))
    assert shown.header[9:11] == ("p50", "p90")
    by_device = {(d["device"], d["threads"]): d for d in shown.data}
    assert by_device[("fpV", 1)]["p90_ms"] == pytest.approx(10.82, abs=0.01)
    assert by_device[("fpA", 1)]["samples"] == "rounds"
    quick = _x86_run(store, 1)
    assert mobile_table(store.run(quick).plan, store.cases(quick)).rows[0][3] == "20.00 ms (1 round)"


def test_rounds_run_round_robin_in_a_seeded_shuffled_order_that_the_plan_keeps() -> None:
    from kpmobile.records import RunPlan
    from kpmobile.sweep.plan import BenchOptions, plan_cases

    models = ["a", "b", "c", "d"]
    cases = plan_cases(models, ["fp"], [1, 4], rounds=3, shuffle_seed=0)
    rounds = [[(c.model, c.threads) for c in cases if c.round == r] for r in range(3)]
    assert [c.round for c in cases] == sorted(c.round for c in cases)  # round-robin: a round ends first
    assert all(sorted(r) == sorted((m, t) for m in models for t in (1, 4)) for r in rounds)
    assert len({tuple(r) for r in rounds}) == 3  # a different order each round
    assert cases == plan_cases(models, ["fp"], [1, 4], rounds=3, shuffle_seed=0)  # the same for the same seed
    assert cases != plan_cases(models, ["fp"], [1, 4], rounds=3, shuffle_seed=1)
    assert BenchOptions().rounds == 3 and BenchOptions().shuffle_seed == 0
    plan = RunPlan(cases=tuple(cases), rounds=3, shuffle_seed=0)
    back = RunPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert back.shuffle_seed == 0 and back.cases == tuple(cases)  # the order is stored


def test_host_rounds_are_shuffled_too_with_each_models_reference_before_its_other_backends() -> None:
    from kpmobile.sweep.host import REFERENCE, plan_host_cases

    models, backends = ["a", "b", "c"], ["ort-cpu", REFERENCE, "paddle-mkldnn", "lite-x86"]
    cases = plan_host_cases(models, "fp", backends, [1, 2], [1], warmup=1, repeats=3, rounds=3, shuffle_seed=0)
    rounds = [[(c.model, c.batch, c.backend) for c in cases if c.round == r] for r in range(3)]
    assert [c.round for c in cases] == sorted(c.round for c in cases)
    assert all(sorted(r) == sorted((m, b, k) for m in models for b in (1, 2) for k in backends) for r in rounds)
    assert len({tuple(r) for r in rounds}) == 3
    for r in rounds:  # in every round each (model, batch)'s reference runs before its other backends
        for m in models:
            for b in (1, 2):
                group = [k for mm, bb, k in r if (mm, bb) == (m, b)]
                assert group[0] == REFERENCE, group
    # The groups interleave: not every model's cases sit together.
    assert any(len({r[i][0] for i in range(j, j + 8)}) > 1 for r in rounds for j in range(0, len(r) - 8, 8))
    unshuffled = plan_host_cases(models, "fp", backends, [1, 2], [1], warmup=1, repeats=3, rounds=3)
    assert [c.backend for c in unshuffled[:4]] == [REFERENCE, "ort-cpu", "paddle-mkldnn", "lite-x86"]
