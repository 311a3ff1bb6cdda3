"""RunPlan and CaseExtra: versioned JSON, old stored plans read, old stores (no runs.error) opened (pure logic)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kpmobile.errors import ConfigError
from kpmobile.records import PLAN_VERSION, BenchCase, CaseExtra, OutputCheck, RunPlan, Telemetry
from kpmobile.report.mobile import mobile_table
from kpmobile.store import Store, schema

# A phone plan as execute.py stored it before RunPlan (no "version", no "kind").
V1_PHONE = {
    "cases": [{"model": "pp-tinypose-128x96", "device": "fpA", "threads": 1, "power_mode": 0, "warmup": 1,
               "repeats": 3, "precision": "fp32", "backend": "arm", "round": 0, "batch": 1, "pipeline": None,
               "persons": None}],
    "models": {"pp-tinypose-128x96": {"display": "PP-TinyPose-128x96 (pose)", "input_shape": [1, 3, 128, 96],
                                      "task": "pose", "flops": None}},
    "devices": {"fpA": {"serial": "A", "label": "Kirin 980", "profile": "kirin980", "soc": "kirin980",
                        "abi": "arm64-v8a", "model": "ELE-AL00", "peak_gflops": 166.4, "big_cores": [4, 5, 6, 7],
                        "thermal_limit_c": 45.0, "pipeline_mode": "composed"}},
    "threads": [1], "power_modes": [0], "rounds": 1,
    "skipped": {"B": {"state": "unauthorized", "reason": "B: unauthorized; accept the prompt on the phone"}},
    "pipelines": {},
    "options": {"servers": ["127.0.0.1:5037"], "pipelines": [], "persons": [1], "cooldown_s": 0.0,
                "thermal_wait_s": 120.0, "core_sample_s": 0.2, "warmup": 1, "repeats": 3, "runner": "/x/bin",
                "pipeline_runner": None},
    "counters": {"ok": 1},
}
V1_HOST = {"kind": "host", "cases": [], "models": {"m": {"display": "M", "input_shape": [1, 3, 8, 8],
                                                         "published": {"AP": 0.5}, "complexity": {"flops": 1e6}}},
           "devices": {"host-x": {"serial": "host", "label": "CPU", "cpus": 2, "load_avg": 1.5}},
           "threads": [1], "batches": [1, 10], "backends": ["paddle-cpu"], "reference": "paddle-cpu"}


def test_an_old_phone_plan_reads_as_a_typed_plan() -> None:
    plan = RunPlan.from_json(V1_PHONE)
    assert plan.kind == "phone" and not plan.is_host and plan.version == PLAN_VERSION
    assert plan.cases == (BenchCase("pp-tinypose-128x96", "fpA", 1, warmup=1, repeats=3),)
    assert plan.devices["fpA"].big_cores == (4, 5, 6, 7) and plan.device_label("fpA") == "Kirin 980"
    assert plan.device_label("unknown") == "unknown" and plan.model_display("x") == "x"
    assert plan.skipped["B"].state == "unauthorized" and plan.options.runner == "/x/bin"
    assert RunPlan.from_json(plan.to_json()) == plan  # the current version round-trips
    assert plan.to_json()["version"] == PLAN_VERSION


def test_an_old_host_plan_keeps_its_axes_and_complexity() -> None:
    plan = RunPlan.from_json(V1_HOST)
    assert plan.is_host and plan.batches == (1, 10) and plan.backends == ("paddle-cpu",)
    assert plan.models["m"].complexity == {"flops": 1e6} and plan.models["m"].published == {"AP": 0.5}
    assert plan.devices["host-x"].cpus == 2 and plan.devices["host-x"].load_avg == 1.5
    assert RunPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_plan_from_a_newer_kpmobile_is_refused() -> None:
    with pytest.raises(ConfigError, match="newer"):
        RunPlan.from_json({"version": PLAN_VERSION + 1})


def test_case_extra_keeps_the_stored_json_shape() -> None:
    extra = CaseExtra(("hot-start",), Telemetry(cooldown={"limit_c": 45.0}, error="no shell"),
                      output_check=OutputCheck(False, "diverge", rtol=1e-3), persons_found=2)
    data = extra.to_json()
    assert data == {"cooldown": {"limit_c": 45.0}, "telemetry_error": "no shell", "flags": ["hot-start"],
                    "output_check": {"ok": False, "detail": "diverge", "rtol": 1e-3, "max_rel": None},
                    "persons_found": 2}
    back = CaseExtra.from_json(data)
    assert back.flags == ("hot-start",) and back.persons_found == 2 and back.output_check is not None
    assert back.output_check.ok is False and back.telemetry is not None and back.telemetry.error == "no shell"
    assert CaseExtra.from_json({}).to_json() == {}


def test_a_store_written_before_runs_kept_their_error_still_renders(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:  # a version-1 store (runs without error), with a v1 plan
        schema.MIGRATIONS[0](con)
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute("INSERT INTO runs VALUES ('r1', 1.0, 2.0, 'complete', 'kpmobile bench', 'h', '0.1', ?)",
                    (json.dumps(V1_PHONE),))
    store = Store(db)
    try:
        run = store.run("r1")
        assert run.error is None and run.plan.devices["fpA"].label == "Kirin 980"
        assert mobile_table(run.plan, store.cases("r1")).header == ("Model", "Kirin 980 (1-thread)")
        store.finish_run("r1", "failed", "the reason")
        assert store.run("r1").error == "the reason"
    finally:
        store.close()
