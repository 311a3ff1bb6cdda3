"""Golden-log tests of kpmobile.runners.parsers: every parsed field of every file under tests/data/logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kpmobile.errors import ParseError
from kpmobile.records import LogDevice, OutputStat, RunRecord
from kpmobile.runners import detect_format, parse_file, parse_log, parse_log_report

LOGS = Path(__file__).parent / "data" / "logs"

EMPTY: dict[str, Any] = {
    "format": None, "model": None, "avg_ms": None, "min_ms": None, "max_ms": None, "first_ms": None,
    "init_ms": None, "threads": None, "power_mode": None, "warmup": None, "repeats": None, "backend": None,
    "cpu_precision": None, "run_delay": None, "init_mb": None, "peak_mb": None, "device": None,
    "outputs": [], "stages": {}, "notes": [], "samples_ms": [],
    "abi": None, "runner_version": None, "input_shape": None, "threads_applied": None, "persons_found": None,
}
MI9 = {"brand": "Xiaomi", "device": "cepheus", "model": "MI 9", "android_version": "10", "api_level": 29}
TINYPOSE_OUT = [{"shape": [1, 17, 32, 24], "mean": 0.0123456, "std": 0.0467812}]
RUNNER_NOTES = [
    "benchmark_bin version: kpmobile-lite-runner 0.1 (paddlelite 2.13rc0)",
    "input_shape: 1,3,32,24",
    "threads applied: no (x86 MobileConfig has no set_threads)",
    "power_mode applied: no (x86 MobileConfig has no set_power_mode)",
]

RUNNER_TYPED = {"runner_version": "kpmobile-lite-runner 0.1 (paddlelite 2.13rc0)", "input_shape": "1,3,32,24"}


def rec(**fields: Any) -> dict[str, Any]:
    """Give a full RunRecord JSON dict: the fields given, every other field at its empty value."""
    unknown = set(fields) - set(EMPTY)
    assert not unknown, unknown
    return {**EMPTY, **_typed_facts(fields.get("notes", [])), **fields}


def _typed_facts(notes: list[str]) -> dict[str, Any]:
    """Give the typed fields a record carries beside its notes: version, input shape, threads applied, persons."""
    said = dict(n.split(": ", 1) for n in notes if ": " in n)
    applied = said.get("threads applied", "").split(" ")[0]
    return {"runner_version": said.get("benchmark_bin version"), "input_shape": said.get("input_shape"),
            "threads_applied": {"no": False, "yes": True}.get(applied),
            "persons_found": int(said["persons"]) if "persons" in said else None}


def bin_run(threads: int, run_delay: float | None, times: tuple[float, ...], version: str) -> dict[str, Any]:
    init, first, low, high, avg = times
    return rec(
        format="benchmark_bin", model="pp-tinypose-128x96", avg_ms=avg, min_ms=low, max_ms=high,
        first_ms=first, init_ms=init, threads=threads, power_mode=0, warmup=10, repeats=50,
        backend="arm", cpu_precision="fp32", run_delay=run_delay, device=MI9, outputs=TINYPOSE_OUT,
        notes=[f"benchmark_bin version: {version}", "input_shape: 1,3,128,96"],
        runner_version=version, input_shape="1,3,128,96",
    )


RUN_T1 = bin_run(1, None, (17.905, 41.22, 30.114, 33.876, 31.052), "v2.10")
RUN_T2 = bin_run(2, 0.5, (17.633, 25.318, 16.87, 19.442, 17.391), "v2.10")
RUN_T4 = bin_run(4, None, (18.002, 19.774, 10.915, 12.73, 11.438), "v2.10")


def legacy(model: str, low: float, high: float, avg: float, threads: int | None = None,
           swapped: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if threads is not None:
        settings = {"threads": threads, "warmup": 10, "repeats": 30, "power_mode": 3, "input_shape": "1,3,224,224"}
    notes = ["min/max swapped back: benchmark_bin v2.3-v2.8 wrote them the wrong way round"] if swapped else []
    return rec(format="benchmark_bin_legacy", model=model, min_ms=low, max_ms=high, avg_ms=avg, notes=notes,
               **settings)


def sh(model: str, avg: float, threads: int) -> dict[str, Any]:
    return rec(format="benchmark_sh", model=model, avg_ms=avg, threads=threads, warmup=10, repeats=30)


DET_STAGES = {"preprocess": 2.9125, "inference": 27.0841, "postprocess": 1.208}
KPT_STAGES = {"keypoint_preprocess": 0.8124, "keypoint_inference": 11.9413, "keypoint_postprocess": 0.6824}

GOLDEN: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "benchmark_bin_android.log": ("benchmark_bin", [
        bin_run(4, None, (18.271, 27.905, 11.326, 14.082, 11.874), "v2.13-rc"),
    ]),
    "benchmark_bin_result_3runs.txt": ("benchmark_bin", [RUN_T1, RUN_T2, RUN_T4]),
    "benchmark_bin_partial_trailing.txt": ("benchmark_bin", [RUN_T1, RUN_T2]),
    "benchmark_bin_opt_memory.log": ("benchmark_bin", [rec(
        format="benchmark_bin", model="picodet-s-320", avg_ms=25.406, min_ms=24.718, max_ms=27.385,
        first_ms=61.904, init_ms=42.337, threads=1, power_mode=0, warmup=10, repeats=30, backend="arm",
        cpu_precision="fp16", init_mb=38.512, peak_mb=52.348,
        device={"brand": "HUAWEI", "device": "HWELE", "model": "ELE-AL00", "android_version": "10",
                "api_level": 29},
        outputs=[{"shape": [1, 2125, 4], "mean": 21.7563, "std": 18.2204},
                 {"shape": [1, 80, 2125], "mean": 6.10352e-05, "std": 0.00213767}],
        notes=["benchmark_bin version: v2.13-rc", "input_shape: 1,3,320,320"],
        runner_version="v2.13-rc", input_shape="1,3,320,320",
    )]),
    "benchmark_bin_v2_11_x86.log": ("benchmark_bin", [rec(
        format="benchmark_bin", model="MobileNetV1", avg_ms=33.918, min_ms=31.982, max_ms=38.947,
        first_ms=80.052, init_ms=18.135, threads=1, power_mode=0, warmup=10, repeats=20, backend="x86",
        cpu_precision="fp32", outputs=[{"shape": [1, 1000], "mean": 0.001, "std": 0.00219646}],
        notes=["benchmark_bin version: v2.11", "input_shape: 1,3,224,224",
               "memory usage not measured: benchmark_bin printed 'Memory Usage(unit: kB):' with "
               "'Not supported yet'"],
        runner_version="v2.11", input_shape="1,3,224,224",
    )]),
    "lite_runner_stdout.log": ("benchmark_bin", [rec(
        format="benchmark_bin", model="tiny_conv_bn_x86", avg_ms=0.053, min_ms=0.049, max_ms=0.056,
        first_ms=0.545, init_ms=5.795, threads=4, power_mode=0, warmup=5, repeats=20, backend="x86",
        cpu_precision="fp32", init_mb=65.281, peak_mb=66.203,
        outputs=[{"shape": [1, 16, 32, 24], "mean": 0.324498, "std": 0.434956}], notes=RUNNER_NOTES, **RUNNER_TYPED,
    )]),
    "lite_runner_result_2runs.txt": ("benchmark_bin", [
        rec(format="benchmark_bin", model="tiny_conv_bn_x86", avg_ms=0.053, min_ms=0.049, max_ms=0.056,
            first_ms=0.545, init_ms=5.795, threads=4, power_mode=0, warmup=5, repeats=20, backend="x86",
            cpu_precision="fp32", init_mb=65.281, peak_mb=66.203,
            outputs=[{"shape": [1, 16, 32, 24], "mean": 0.324498, "std": 0.434956}], notes=RUNNER_NOTES,
            **RUNNER_TYPED),
        rec(format="benchmark_bin", model="tiny_conv_bn_x86", avg_ms=0.093, min_ms=0.085, max_ms=0.124,
            first_ms=0.607, init_ms=18.148, threads=1, power_mode=3, warmup=5, repeats=20, backend="x86",
            cpu_precision="fp32", run_delay=2.0,
            outputs=[{"shape": [1, 16, 32, 24], "mean": 0.324498, "std": 0.434956}], notes=RUNNER_NOTES,
            **RUNNER_TYPED),
    ]),
    "legacy_result.txt": ("benchmark_bin_legacy", [
        legacy("mobilenet_v1", 31.9821, 38.9473, 33.9182),
        legacy("pp-tinypose-128x96", 11.326, 14.082, 11.874),
        legacy("picodet_s_320_coco_lcnet_non_postprocess", 25.4123, 29.0017, 26.1388),
    ]),
    "legacy_benchmark_sh_v2_3.txt": ("benchmark_bin_legacy", [
        legacy("mobilenet_v1", 33.8621, 35.1234, 34.2138, threads=1, swapped=True),
        legacy("mobilenet_v2", 27.9002, 29.7551, 28.4117, threads=1, swapped=True),
        legacy("mobilenet_v1", 18.0223, 19.4412, 18.5096, threads=2, swapped=True),
        legacy("mobilenet_v2", 15.1109, 16.3014, 15.5236, threads=2, swapped=True),
        legacy("mobilenet_v1", 10.3187, 11.2045, 10.6642, threads=4, swapped=True),
        legacy("mobilenet_v2", 9.0114, 9.8337, 9.3005, threads=4, swapped=True),
    ]),
    "benchmark_sh_v2_2.txt": ("benchmark_sh", [
        sh("mobilenet_v1", 33.8763, 1), sh("mobilenet_v2", 28.1254, 1),
        sh("mobilenet_v1", 18.441, 2), sh("mobilenet_v2", 15.6032, 2),
        sh("mobilenet_v1", 10.7029, 4), sh("mobilenet_v2", 9.3311, 4),
    ]),
    "det_keypoint_demo.log": ("det_keypoint_demo", [rec(
        format="det_keypoint_demo", model="model_det", avg_ms=58.1424, threads=4,
        stages={**DET_STAGES, **KPT_STAGES, "total": 58.1424, "det": 31.2046, "keypoint": 26.8722,
                "crop": 0.0656},
        notes=["keypoint model_name: model_keypoint", "images: 1", "persons: 2"],
    )]),
    "det_keypoint_demo_2021.log": ("det_keypoint_demo", [rec(
        format="det_keypoint_demo", model=None, avg_ms=44.7063, threads=4,
        stages={**DET_STAGES, **KPT_STAGES, "total": 44.7063, "det": 31.2046, "keypoint": 13.4361,
                "crop": 0.0656},
        notes=["images: 1", "persons: 2"],
    )]),
    "det_only_demo.log": ("det_keypoint_demo", [
        rec(format="det_keypoint_demo", model="picodet_s_320_pedestrian", avg_ms=pytest.approx(31.2046),
            threads=4, stages=DET_STAGES,
            notes=["no keypoint model: avg_ms is preprocess + inference + postprocess", "images: 1"]),
        rec(format="det_keypoint_demo", model="picodet_s_320_pedestrian", avg_ms=pytest.approx(75.6291),
            threads=1, stages={"preprocess": 2.8806, "inference": 71.5573, "postprocess": 1.1912},
            notes=["no keypoint model: avg_ms is preprocess + inference + postprocess", "images: 1"]),
    ]),
}

FAILING: dict[str, tuple[str | None, str, str]] = {
    # file: (detected format, message, text the hint holds)
    "benchmark_bin_truncated.log": (
        "benchmark_bin", "no complete run in log: 'Perf Info' block missing after 'Runtime Info'", "crashed"),
    "benchmark_bin_crash.log": (
        "benchmark_bin", "no complete run in log: 'Perf Info' block missing after 'Opt Info'",
        "the log shows: [F 11/22 15:47:35.135 ...d/Paddle-Lite/lite/core/model/base/io.cc:54 Read] Check failed"),
    "garbage.log": (
        None, "no complete run in log: no benchmark_bin 'Info' block, result.txt line, benchmark.sh line or "
        "det/keypoint demo timing found in 4 lines", "lite_runner"),
}


def test_every_golden_file_is_covered() -> None:
    assert sorted(p.name for p in LOGS.iterdir()) == sorted(set(GOLDEN) | set(FAILING))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_file_json(name: str) -> None:
    fmt, expected = GOLDEN[name]
    text = (LOGS / name).read_bytes().decode("utf-8")
    records = parse_log(text)
    assert detect_format(text) == fmt
    assert [r.to_json() for r in records] == expected
    for record in records:
        assert json.loads(json.dumps(record.to_json())) == record.to_json()
    assert parse_file(LOGS / name) == records


def test_android_run_as_records() -> None:
    (record,) = parse_file(LOGS / "benchmark_bin_android.log")
    assert record == RunRecord(
        format="benchmark_bin", model="pp-tinypose-128x96", avg_ms=11.874, min_ms=11.326, max_ms=14.082,
        first_ms=27.905, init_ms=18.271, threads=4, power_mode=0, warmup=10, repeats=50, backend="arm",
        cpu_precision="fp32", device=LogDevice("Xiaomi", "cepheus", "MI 9", "10", 29),
        outputs=(OutputStat((1, 17, 32, 24), 0.0123456, 0.0467812),),
        notes=("benchmark_bin version: v2.13-rc", "input_shape: 1,3,128,96"),
        runner_version="v2.13-rc", input_shape="1,3,128,96",
    )


def test_det_keypoint_stages_as_dict() -> None:
    (record,) = parse_file(LOGS / "det_keypoint_demo.log")
    assert record.stages["total"] == record.avg_ms == 58.1424
    assert set(record.stages) == {"total", "det", "keypoint", "crop", "preprocess", "inference", "postprocess",
                                  "keypoint_preprocess", "keypoint_inference", "keypoint_postprocess"}


def test_partial_trailing_run_is_reported() -> None:
    records, warnings = parse_log_report((LOGS / "benchmark_bin_partial_trailing.txt").read_text())
    assert [r.threads for r in records] == [1, 2]
    assert warnings == ["line 79: trailing run ignored: 'Perf Info' cut short at 'min   = 10.9', before 'avg'"]


def test_complete_files_have_no_warnings() -> None:
    for name in GOLDEN:
        if name != "benchmark_bin_partial_trailing.txt":
            assert parse_log_report((LOGS / name).read_text())[1] == [], name


@pytest.mark.parametrize("name", sorted(FAILING))
def test_failing_files(name: str) -> None:
    fmt, message, hint = FAILING[name]
    text = (LOGS / name).read_bytes().decode("utf-8")
    assert detect_format(text) == fmt
    with pytest.raises(ParseError) as info:
        parse_log(text)
    assert info.value.message == message
    assert hint in info.value.hint
    assert "\n" not in info.value.one_line()
    with pytest.raises(ParseError) as from_file:
        parse_file(LOGS / name)
    assert from_file.value.message == f"{LOGS / name}: {message}"


def test_empty_log() -> None:
    with pytest.raises(ParseError, match="the log is empty"):
        parse_log("  \n\n")


# --- variations of real logs -----------------------------------------------------------------


def test_rstripped_output_still_parses() -> None:
    """adbutils' shell() strips trailing whitespace: the last line loses its setw(12) padding."""
    text = (LOGS / "benchmark_bin_opt_memory.log").read_text().rstrip()
    (record,) = parse_log(text)
    assert (record.avg_ms, record.peak_mb) == (25.406, 52.348)
    legacy_text = (LOGS / "legacy_result.txt").read_text().rstrip()
    assert [r.avg_ms for r in parse_log(legacy_text)] == [33.9182, 11.874, 26.1388]


def test_crlf_line_endings() -> None:
    text = (LOGS / "benchmark_bin_result_3runs.txt").read_text().replace("\n", "\r\n")
    assert [r.to_json() for r in parse_log(text)] == [RUN_T1, RUN_T2, RUN_T4]


def test_stdout_of_two_runs_with_monitor_lines_between() -> None:
    one = (LOGS / "benchmark_bin_opt_memory.log").read_text()
    records, warnings = parse_log_report(one + one)
    assert len(records) == 2 and records[0] == records[1] and warnings == []


def test_run_cut_inside_a_number_is_not_taken() -> None:
    text = (LOGS / "benchmark_bin_android.log").read_text()
    cut = text[: text.index("avg   = 11.874") + len("avg   = 11.8")]
    with pytest.raises(ParseError, match=r"'Perf Info' cut short at 'avg   = 11.8', before 'avg'"):
        parse_log(cut)


def test_incomplete_run_between_complete_ones() -> None:
    text = (LOGS / "benchmark_bin_result_3runs.txt").read_text()
    first_perf = text.index("\n======= Perf Info")
    second_run = text.index("\n======= Device Info", first_perf)
    broken = text[:first_perf] + text[second_run:]  # run 1 lost its Perf Info
    records, warnings = parse_log_report(broken)
    assert [r.threads for r in records] == [2, 4]
    assert warnings == ["line 2: incomplete run ignored: 'Perf Info' block missing after 'Backend Info'"]


def test_legacy_line_cut_short() -> None:
    text = (LOGS / "legacy_result.txt").read_text()
    cut = text[: text.index("average = 26.13") + len("average = 26.13")]
    records, warnings = parse_log_report(cut)
    assert [r.model for r in records] == ["mobilenet_v1", "pp-tinypose-128x96"]
    assert len(warnings) == 1 and warnings[0].startswith("line 3: trailing run ignored: result line cut short")


def test_benchmark_sh_header_without_results() -> None:
    with pytest.raises(ParseError, match="benchmark.sh header found but no model result line"):
        parse_log("PaddleLite Benchmark\nThreads=1 Warmup=10 Repeats=30\n")


def test_det_keypoint_demo_stopped_before_time_info() -> None:
    text = (LOGS / "det_keypoint_demo.log").read_text()
    cut = text[: text.index("----------------------- Time info")]
    with pytest.raises(ParseError, match="'Time info' section missing after 'Perf info'"):
        parse_log(cut)


def test_det_keypoint_demo_appended_with_a_crashed_run() -> None:
    good = (LOGS / "det_keypoint_demo.log").read_text()
    crashed = "Usage: ./main [config_path] [image_dir](option)\nSegmentation fault\n"
    records, warnings = parse_log_report(good + crashed + good)
    assert [r.avg_ms for r in records] == [58.1424, 58.1424]
    assert warnings == ["line 26: incomplete run ignored: 'Perf info' section missing "
                        "(the demo stopped before printing its timings)"]
    with pytest.raises(ParseError) as info:
        parse_log(crashed)
    assert info.value.hint == "the log shows: Segmentation fault"


def test_benchmark_bin_accuracy_block_and_opencl_lines_become_notes() -> None:
    text = (LOGS / "benchmark_bin_android.log").read_text()
    text = text.replace("cpu precision: fp32\n", "cpu precision: fp32\ngpu precision: fp16\n"
                        "opencl_cache_dir: /data/local/tmp/\n")
    text = text.replace("backend: arm", "backend: opencl,arm")
    text = text.replace("\n======= Perf Info", "\n======= Accurancy Info =======\nconfig: c.txt\n"
                        "topk: 1\nTop-1 Accurancy: 0.712\n\n======= Perf Info")
    (record,) = parse_log(text)
    assert record.backend == "opencl,arm"
    assert record.notes == ("benchmark_bin version: v2.13-rc", "input_shape: 1,3,128,96",
                            "gpu precision: fp16", "opencl_cache_dir: /data/local/tmp/", "Top-1 Accurancy: 0.712")


def test_model_name_from_opt_info_of_an_uncombined_model() -> None:
    text = (LOGS / "benchmark_bin_opt_memory.log").read_text()
    base = "/data/local/tmp/benchmark/picodet-s-320"
    text = text.replace(f"{base}/model.pdmodel and {base}/model.pdiparams", "/data/local/tmp/mv2_uncombined/")
    text = text.replace(f"optimized_model_file: {base}/opt.nb", "optimized_model_file: .nb")
    (record,) = parse_log(text)
    assert record.model == "mv2_uncombined"


def test_empty_getprop_answers_are_none() -> None:
    text = (LOGS / "benchmark_bin_android.log").read_text()
    text = text.replace("Brand: Xiaomi\n", "Brand: \n").replace("Android API Level: 29\n", "Android API Level:\n")
    (record,) = parse_log(text)
    assert record.device == LogDevice(None, "cepheus", "MI 9", "10", None)


def test_per_iteration_lines_of_kpmobiles_runners_become_samples() -> None:
    from kpmobile.runners import lite_runner as lr
    from kpmobile.runners import pipeline_runner as pr

    # benchmark_bin's own logs (the golden files) give samples_ms == (): see EMPTY.
    report = lr.Report(model_file="/m.nb", input_data_path="", input_shape="1,3,32,24", outputs=[],
                       version="v", threads=1, power_mode=0, warmup=0, repeats=3, run_delay=0.0, result_path="",
                       backend="x86", cpu_precision="fp32", init_ms=1.0, first_ms=2.0, min_ms=2.0, max_ms=4.0,
                       avg_ms=3.0)
    runs = [lr.format_report(report) + lr.format_samples([2.0, 3.0, 4.0]),
            lr.format_report(report) + lr.format_samples([2.0, 4.0, 3.0])]
    records = parse_log("".join(runs))
    assert [r.samples_ms for r in records] == [(2.0, 3.0, 4.0), (2.0, 4.0, 3.0)]
    assert parse_log(lr.format_report(report))[0].samples_ms == ()
    flags = pr.Flags(det_model="d.nb", keypoint_model="k.nb", image="i.ppm", persons=1, repeats=2)
    times = pr.Times(det_pre=4, det_inf=40, det_post=6, crop=1, kpt_pre=2, kpt_inf=40, kpt_post=2, total=100)
    log = "".join(pr.format_report(flags, times, [(0, 0, 10, 10, 0.5)]) + f"per-iteration(ms): {v} {v + 2}\n"
                  for v in (49.0, 60.0))
    assert [r.samples_ms for r in parse_log(log)] == [(49.0, 51.0), (60.0, 62.0)]
