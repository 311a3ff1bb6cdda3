"""Golden tests on what the real benchmark_bin v2.13-rc printed (tests/data/real/, see its README):
every parsed field, and the failure reasons kpmobile derives from its usage and abort text."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpmobile.records import OutputStat
from kpmobile.report.outputs import NOT_COMPARABLE, check_output_stats
from kpmobile.runners import benchmark_bin as bbin
from kpmobile.runners import parse_file, parse_log

REAL = Path(__file__).parent / "data" / "real" / "benchmark_bin"
TINYPOSE_NB = "/root/.cache/kpmobile/nb/acc13887a53d98e92ad4deaeeac84caeb83f3d9250abeafd5d4c905150c6c1e6.nb"
PICODET_NB = "/root/.cache/kpmobile/nb/7e5cb02d75f827d02728afeb6ed4b995b2200f882aa4d921ee60cfb46282ea7f.nb"
TINYPOSE_OUT = [{"shape": [1, 17, 32, 24], "mean": 0.000757254, "std": 0.0029032},
                {"shape": [1, 17], "mean": 3.10676e-43, "std": 3.6078e-43}]
PICODET_OUT = [
    {"shape": shape, "mean": mean, "std": std} for shape, mean, std in (
        ([1, 576, 1], 0.710664, 0.438402), ([1, 144, 1], 0.0916707, 0.273279), ([1, 36, 1], 0.166545, 0.372196),
        ([1, 9, 1], 3.69425e-39, 1.30611e-39), ([1, 576, 32], -4.98534, 36.872), ([1, 144, 32], -6.27141, 50.0449),
        ([1, 36, 32], 0.679924, 123.303), ([1, 9, 32], -36.3561, 194.79))
]


def full(model: str, shape: str, outputs: list[dict[str, object]], **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "format": "benchmark_bin", "model": model, "backend": "arm", "cpu_precision": "fp32", "run_delay": None,
        "init_mb": None, "peak_mb": None, "device": None, "outputs": outputs, "stages": {}, "abi": None,
        "runner_version": "v2.13-rc", "input_shape": shape, "threads_applied": None, "persons_found": None,
        "samples_ms": [],  # benchmark_bin prints no per-iteration times: rounds are its samples
        "notes": ["benchmark_bin version: v2.13-rc", f"input_shape: {shape}"],
    }
    return {**base, **fields}


TINYPOSE = TINYPOSE_NB.rsplit("/", 1)[1][:-3]
PICODET = PICODET_NB.rsplit("/", 1)[1][:-3]
GOLDEN = {
    "benchmark_bin_v2.13-rc_tinypose_result.txt": full(
        TINYPOSE, "1,3,128,96", TINYPOSE_OUT, avg_ms=3288.807, min_ms=2623.658, max_ms=3953.955, first_ms=6352.081,
        init_ms=771.036, threads=4, power_mode=0, warmup=1, repeats=2),
    "benchmark_bin_v2.13-rc_tinypose_memory_result.txt": full(
        TINYPOSE, "1,3,128,96", TINYPOSE_OUT, avg_ms=1781.419, min_ms=1651.41, max_ms=1911.429, first_ms=1171.307,
        init_ms=422.03, threads=1, power_mode=3, warmup=1, repeats=2, init_mb=81.09, peak_mb=94.367),
    "benchmark_bin_v2.13-rc_tinypose_memory_stdout.txt": full(
        TINYPOSE, "1,3,128,96", TINYPOSE_OUT, avg_ms=1781.419, min_ms=1651.41, max_ms=1911.429, first_ms=1171.307,
        init_ms=422.03, threads=1, power_mode=3, warmup=1, repeats=2, init_mb=81.09, peak_mb=94.367),
    "benchmark_bin_v2.13-rc_picodet_1t_stdout.txt": full(
        PICODET, "1,3,192,192", PICODET_OUT, avg_ms=2148.729, min_ms=2050.288, max_ms=2247.171, first_ms=2128.346,
        init_ms=302.021, threads=1, power_mode=0, warmup=1, repeats=2),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_field_of_the_real_runner_output(name: str) -> None:
    (record,) = parse_file(REAL / name)
    assert record.to_json() == GOLDEN[name]
    assert bbin.runner_version(record) == "v2.13-rc" and bbin.threads_applied(record) is True
    assert bbin.reads_outputs_as_float(record) and bbin.memory_source(record) == bbin.MEMORY_BENCHMARK_BIN


def test_the_result_file_is_written_over_per_invocation() -> None:
    # A 1-thread run wrote the file first; the 4-thread power_mode 2 run left only its own run in it.
    (record,) = parse_file(REAL / "benchmark_bin_v2.13-rc_picodet_4t_pm2_result.txt")
    assert (record.threads, record.power_mode, record.warmup, record.repeats) == (4, 2, 1, 2)
    assert record.outputs[0] == OutputStat((1, 576, 1), 0.710664, 0.438402) and len(record.outputs) == 8
    assert bbin.echo_differences({"threads": "4", "power_mode": "2", "warmup": "1", "repeats": "2",
                                    "backend": "arm", "input_shape": "1,3,192,192"}, record) == {}
    assert bbin.echo_differences({"threads": "1", "power_mode": "2"}, record) == {
        "threads": {"asked": "1", "echoed": "4"}}


def test_checked_record_takes_the_echo_as_fields() -> None:
    (record,) = parse_file(REAL / "benchmark_bin_v2.13-rc_tinypose_result.txt")
    argv = ["benchmark_bin", "--optimized_model_file=m.nb", "--input_shape=1,3,128,96", "--threads=4",
            "--power_mode=0", "--warmup=1", "--repeats=2", "--backend=arm", "--result_path=r.txt"]
    checked, differs = bbin.checked_record(record, argv)
    assert differs == {} and (checked.runner_version, checked.input_shape, checked.threads_applied) == (
        "v2.13-rc", "1,3,128,96", True)
    argv[3] = "--threads=2"
    checked, differs = bbin.checked_record(record, argv)
    assert differs == {"threads": {"asked": "2", "echoed": "4"}} and checked.threads_applied is False


def test_usage_on_exit_0_names_the_missing_flag() -> None:
    stdout = (REAL / "benchmark_bin_v2.13-rc_usage_stdout.txt").read_text()
    reason = bbin.usage_reason(stdout, (REAL / "benchmark_bin_v2.13-rc_no_input_shape_stderr.txt").read_text())
    assert reason is not None and "printed its usage and exited 0" in reason and "missing --input_shape" in reason
    everything = bbin.usage_reason(stdout, (REAL / "benchmark_bin_v2.13-rc_no_args_stderr.txt").read_text())
    assert everything is not None and "missing --optimized_model_file, --backend, --input_shape" in everything
    ok = (REAL / "benchmark_bin_v2.13-rc_picodet_1t_stdout.txt").read_text()
    assert bbin.usage_reason(ok, "") is None


@pytest.mark.parametrize(("name", "rc", "words"), [
    ("benchmark_bin_v2.13-rc_batch2_stderr.txt", 134, ["std::exception", "input shape or batch", "wrong-version .nb"]),
    ("benchmark_bin_v2.13-rc_truncated_nb_stderr.txt", 134, ["std::exception", "corrupt, truncated"]),
    ("benchmark_bin_v2.13-rc_missing_model_stderr.txt", 134, ["/nonexist.nb not found on the device"]),
    ("benchmark_bin_v2.13-rc_unknown_flag_stderr.txt", 1, ["does not know the flag --bogus_flag"]),
])
def test_failure_reasons_from_the_real_stderr(name: str, rc: int, words: list[str]) -> None:
    reason = bbin.failure_hint(rc, "", (REAL / name).read_text())
    assert reason is not None and "\n" not in reason and all(w in reason for w in words), reason
    assert reason.startswith(f"runner exited {rc}")


def test_output_check_compares_floats_and_marks_integers_not_comparable() -> None:
    (record,) = parse_log((REAL / "benchmark_bin_v2.13-rc_tinypose_result.txt").read_text())
    # the x86 .nb's reference through paddlelite's Python API (int64 argmax read as int64)
    reference = (OutputStat((1, 17, 32, 24), 0.000757253, 0.0029032, "float32"),
                 OutputStat((1, 17), 392.706, 222.275, "int64"))
    check = check_output_stats(reference, record.outputs, read_as_float=True)
    assert check.ok and check.max_rel < 1e-6
    assert check.skipped == (f"output 1 (int64): {NOT_COMPARABLE}",)
    naive = check_output_stats(reference, record.outputs)  # as if benchmark_bin read dtypes
    assert not naive.ok


def test_an_all_zero_reference_output_accepts_denormal_noise_only() -> None:
    (record,) = parse_log((REAL / "benchmark_bin_v2.13-rc_picodet_1t_stdout.txt").read_text())
    zero = OutputStat((1, 9, 1), 0.0, 0.0, "float32")
    assert check_output_stats((zero,), record.outputs[3:4], read_as_float=True).ok  # 3.7e-39 printed
    assert not check_output_stats((zero,), (OutputStat((1, 9, 1), 1e-6, 0.0),), read_as_float=True).ok


def test_kpmobile_parse_gives_every_field_of_the_real_files() -> None:
    import json

    from conftest import run_kpmobile as kpmobile

    names = ["benchmark_bin_v2.13-rc_tinypose_result.txt", "benchmark_bin_v2.13-rc_tinypose_memory_result.txt"]
    res = kpmobile("parse", *[str(REAL / n) for n in names], "--json")
    assert res.returncode == 0, res.stderr
    parsed = json.loads(res.stdout)
    assert [{k: v for k, v in p.items() if k != "file"} for p in parsed] == [GOLDEN[n] for n in names]
