"""Pure parts of issue 4's sweeps: planning, sweep files, telemetry parsing, cell statistics and
the pipeline and roofline tables, and the pipeline runner's output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kpmobile.devices import telemetry
from kpmobile.errors import ConfigError
from kpmobile.records import BenchCase
from kpmobile.report.mobile import mobile_table, roofline_table
from kpmobile.report.pipeline import pipeline_table
from kpmobile.runners import pipeline_runner as pr
from kpmobile.runners.parsers import parse_log
from kpmobile.store import Store
from kpmobile.sweep.config import load_options
from kpmobile.sweep.plan import pipeline_models, plan_cases, select_profiles, split_pipeline

ROOT = Path(__file__).resolve().parent.parent
PIPE = "picodet-s-192+pp-tinypose-128x96"


def test_plan_sweeps_rounds_power_modes_and_pipelines_where_they_run() -> None:
    cases = plan_cases(["m"], ["x86", "arm"], [1, 4], rounds=2, power_modes=[0, 1], pipelines=[PIPE],
                       persons=[1, 6], pipeline_devices=["x86"])
    x86 = [c for c in cases if c.device == "x86"]
    arm = [c for c in cases if c.device == "arm"]
    assert len(x86) == 2 * (1 + 2) * 2 * 2 and len(arm) == 2 * 2 * 2
    assert len({c.key() for c in cases}) == len(cases)
    assert [c.round for c in x86] == sorted(c.round for c in x86)  # a round ends before the next starts
    piped = [c for c in x86 if c.pipeline]
    assert {(c.persons, c.power_mode) for c in piped} == {(1, 0), (1, 1), (6, 0), (6, 1)}
    assert all(c.model == PIPE for c in piped) and not any(c.pipeline for c in arm)


def test_pipelines_add_their_models_and_malformed_ones_are_refused() -> None:
    assert split_pipeline(PIPE) == ("picodet-s-192", "pp-tinypose-128x96")
    assert pipeline_models(["picodet-s-320"], [PIPE]) == ["picodet-s-320", "picodet-s-192", "pp-tinypose-128x96"]
    with pytest.raises(ConfigError, match="DETECTOR\\+POSE"):
        load_options(None, {"pipelines": ["picodet-s-192"]})


def test_profiles_select_phones() -> None:
    profiles = {"a": "kirin980", "b": "sdm660", "c": "virtual", "d": None}
    assert select_profiles(["kirin980", "SDM660"], profiles) == ["a", "b"]
    assert select_profiles([], profiles) == ["a", "b", "c", "d"]


def test_shipped_sweep_reproduces_the_seed_and_flags_override_it() -> None:
    opts = load_options(ROOT / "sweeps" / "mobile_table.toml", {"rounds": 3, "repeats": 3})
    assert list(opts.models) == ["pp-tinypose-128x96", "picodet-s-192", "picodet-s-320"]
    assert list(opts.profiles) == ["kirin980", "sdm660"] and list(opts.threads) == [1, 4]
    assert opts.rounds == 3 and opts.repeats == 3 and opts.warmup == 10


def test_snapshot_parsing_normalises_units_and_drops_bogus_zones() -> None:
    text = "\n".join([
        "T thermal_zone0 cpu-big 48500", "T thermal_zone1 battery 31", "T thermal_zone2 disabled -273000",
        "T thermal_zone3 broken ?", "F 4 1800000 2600000 2600000", "F 5 ? ? ?",
    ])
    snap = telemetry.parse_snapshot(text)
    assert snap.temps_c == {"thermal_zone0:cpu-big": 48.5, "thermal_zone1:battery": 31.0}
    assert snap.hottest_c == 48.5 and snap.cur_khz == {4: 1800000} and snap.max_khz == {4: 2600000}
    capped = telemetry.parse_snapshot("F 4 1200000 2000000 2600000")
    assert telemetry.throttled(snap, capped) == [4]  # 2.6 -> 2.0 GHz is a 23 % drop
    assert telemetry.throttled(snap, telemetry.parse_snapshot("F 4 1200000 2400000 2600000")) == []
    # Capped from the start (the trip fell between two cases): nothing drops, yet the case ran throttled.
    assert telemetry.capped(capped) == [4] and telemetry.capped(snap) == []
    assert telemetry.capped(telemetry.parse_snapshot("F 4 1200000 2400000 2600000")) == []  # 8 %: not past 15 %


def test_core_samples_read_field_39_even_when_comm_has_spaces() -> None:
    tail = " ".join(["0"] * 34)  # fields 5-38
    lines = [f"123 (bench bin) R 1 {tail} 5 0 0", f"124 (a) b) S 1 {tail} 6 0 0", "garbage"]
    seen = telemetry.parse_core_samples("\n".join(lines))
    assert seen == Counter({5: 1, 6: 1})
    check = telemetry.core_check(seen, telemetry.expected_cores(0, [4, 5, 6, 7], range(8)))
    assert check["mismatch"] is False and check["outside_share"] == 0.0
    assert telemetry.core_check(Counter({0: 9, 4: 1}), (4, 5, 6, 7))["mismatch"] is True
    assert telemetry.expected_cores(1, [4, 5, 6, 7], range(8)) == (0, 1, 2, 3)
    assert telemetry.expected_cores(3, [4, 5, 6, 7], range(8)) is None


PLAN = {
    "models": {"pp-tinypose-128x96": {"display": "PP-TinyPose-128x96 (pose)", "flops": 80e6},
               "picodet-s-192": {"display": "PicoDet-s-192x192 (det)", "flops": 124e6}},
    "devices": {"fpA": {"label": "Kirin 980", "serial": "A", "peak_gflops": 166.4, "pipeline_mode": "composed"},
                "fpV": {"label": "Virtual phone", "serial": "V", "pipeline_mode": "runner"}},
    "threads": [1], "power_modes": [0],
    "pipelines": {PIPE: {"det": "picodet-s-192", "pose": "pp-tinypose-128x96", "persons": [1, 6]}},
}


def _stored(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "s.db")
    run = store.new_run("test", PLAN)
    values = {"pp-tinypose-128x96": [10.0, 10.1, 12.5], "picodet-s-192": [20.0, 20.2, 19.9]}
    for fp in ("fpA", "fpV"):
        for rnd in range(3):
            for model, vals in values.items():
                flags = ["throttled"] if (fp, model, rnd) == ("fpA", "picodet-s-192", 1) else []
                store.add_case(run, BenchCase(model, fp, 1, round=rnd), serial=fp[-1], status="ok",
                               numbers={"avg_ms": vals[rnd]}, extra={"flags": flags})
    log = pr.format_report(pr.Flags(det_model="d.nb", keypoint_model="k.nb", image="i.ppm", persons=6, repeats=2),
                           pr.Times(det_pre=4, det_inf=40, det_post=6, crop=1, kpt_pre=12, kpt_inf=240, kpt_post=2,
                                    total=306),
                           [(0, 0, 10, 10, 0.5)] * 6)
    rec = parse_log(log)[-1]
    store.add_case(run, BenchCase(PIPE, "fpV", 1, pipeline=PIPE, persons=6), serial="V", status="ok",
                   numbers={"avg_ms": rec.avg_ms}, record=rec.to_json())
    return store, run


def test_cells_show_mean_std_and_flags_of_their_rounds(tmp_path: Path) -> None:
    store, run = _stored(tmp_path)
    table = mobile_table(PLAN, store.cases(run))
    assert table.header == ("Model", "Kirin 980 (1-thread)", "Virtual phone (1-thread)")
    assert table.rows[0][1] == "10.87 ± 1.42 ms *"  # issue 15: * for CV > 5 % or a flagged round
    pose, det = table.data[0], table.data[2]
    assert pose["starred"] and pose["star_reasons"] == ["cv>5%"]  # 3 rising rounds are no trend
    assert det["starred"] and det["star_reasons"] == ["throttled"] and table.rows[1][1].endswith(" ms *")
    assert pose["rounds"] == 3 and pose["cv"] > 0.05 and "cv>5%" in pose["flags"] and "trend-up" not in pose["flags"]
    assert det["flags"] == ["throttled"] and det["std_ms"] == pytest.approx(0.1528, abs=1e-3)
    assert det["gflops"] == pytest.approx(2 * 124e6 / (det["mean_ms"] / 1e3) / 1e9)
    assert det["peak_gflops"] == 166.4
    assert any("throttled" in n for n in table.notes)
    roof = roofline_table(PLAN, store.cases(run))
    assert roof is not None and roof.header[1:4] == ("MFLOPs (MACs)", "Kirin 980 (1-thread)", "GFLOP/s")
    assert roof.rows[1][3].endswith("of 166.4)")


def test_pipeline_table_measured_and_composed(tmp_path: Path) -> None:
    store, run = _stored(tmp_path)
    table = pipeline_table(PLAN, store.cases(run))
    assert table is not None
    cells = {(c["device"], c["persons"]): c for c in table.data}
    measured = cells[("fpV", 6)]
    assert measured["mode"] == "runner" and measured["total_ms"] == pytest.approx(153.0)
    assert measured["stages_ms"]["pose_infer"] == pytest.approx(120.0)  # 20 ms per person x 6
    assert measured["stages_ms"]["det_infer"] == pytest.approx(20.0)
    composed = cells[("fpA", 6)]
    assert composed["mode"] == "composed" and composed["flags"] == ["composed"]
    assert composed["total_ms"] == pytest.approx(20.0333 + 6 * 10.8667, abs=1e-3)
    assert cells[("fpV", 1)]["total_ms"] is None


def test_pipeline_runner_output_is_the_demo_format_and_persons_are_exact() -> None:
    import numpy as np

    img = pr.read_image(str(ROOT / "assets" / "pipeline_scene.ppm"))
    assert img.shape == (192, 256, 3)
    boxes = np.array([[0, 0, 50, 90, 0.9], [10, 10, 12, 12, 0.8]])  # the second is too small to use
    chosen, fixed = pr.choose_persons(boxes, 4, 192, 256)
    assert len(chosen) == 4 and fixed == 3 and chosen[0][:4] == (0, 0, 50, 90)
    crop, corner = pr.crop_person(img, chosen[1])
    assert crop.size and corner[0] >= 0
    log = pr.format_report(pr.Flags(det_model="a/det.nb", keypoint_model="k.nb", image="x.ppm", persons=4),
                           pr.Times(det_pre=10, det_inf=100, det_post=10, crop=1, kpt_pre=4, kpt_inf=200,
                                    kpt_post=4, total=330), chosen)
    rec = parse_log(log)[-1]
    assert rec.format == "det_keypoint_demo" and rec.model == "det"
    assert rec.stages["keypoint_inference"] == pytest.approx(5.0) and rec.avg_ms == pytest.approx(33.0)
    assert "persons: 4" in rec.notes
