"""Time per operator: the profiler-summary parser on real output of the profiling benchmark_bin,
the op store, `report ops` and `kpmobile parse`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

from kpmobile.errors import ParseError
from kpmobile.records import BenchCase
from kpmobile.report.ops import cell_id, diff_tables, matches, ops_tables
from kpmobile.runners.opprofile import has_profile, parse_profile, per_kernel
from kpmobile.store import Store

REAL = Path(__file__).parent / "data" / "real" / "paddle_lite_profile"
TP1 = REAL / "tinypose128x96_t1_w1r12.stderr"
TP4 = REAL / "tinypose128x96_t4_w1r12.stderr"
PD1 = REAL / "picodet-s-192_t1_w1r12.stderr"
SHORT = REAL / "tinypose128x96_t1_w1r2.stderr"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_three_tables_of_a_real_profile() -> None:
    profile = parse_profile(_text(TP1))
    kinds = [(t.kind, t.timer, t.excluded, t.cycles, len(t.rows)) for t in profile.tables]
    assert kinds == [("detailed", "Dispatch", 1, None, 635), ("concise", "Create", 10, 13, 14),
                     ("concise", "Dispatch", 10, 13, 14)]
    first = profile.tables[0].rows[0]
    assert (first.op_type, first.kernel, first.func, first.remark, first.in_dim, first.filter_dim) == (
        "conv2d", "arm/float/NCHW", "conv_3x3s2_direct_fp32", "3x3p1s2g1d1BiasRelu", "1x3x128x96", "32x3x3x3")
    assert (first.avg_ms, first.min_ms, first.max_ms, first.share) == (76.020, 28.863, 128.225, 3.35)
    concise = profile.table("concise")
    assert concise is not None
    split = next(r for r in concise.rows if r.op_type == "split")
    assert (split.kernel, split.func, split.avg_ms, split.calls) == ("host/float/NCHW", "NotImpl", 5.785, 49)


def test_out_of_line_columns_are_read_by_tokens() -> None:
    """`1x16x32x24/1x16x32x24` and `fusion_elementwise_add_activation` push later columns right."""
    rows = parse_profile(_text(TP1)).tables[0].rows
    concat = next(r for r in rows if r.in_dim == "1x16x32x24/1x16x32x24")
    assert (concat.op_type, concat.avg_ms, concat.share) == ("concat", 0.113, 0.0)
    fused = [r for r in rows if r.op_type == "fusion_elementwise_add_activation"]
    assert len(fused) == 16 and all(r.kernel == "arm/float/NCHW" for r in fused)


def test_detailed_sum_matches_the_stdout_average() -> None:
    """The README's sanity check: the per-op averages sum to about the run's avg (2291.715 ms on stdout)."""
    detailed = parse_profile(_text(TP1)).tables[0]
    assert sum(r.avg_ms for r in detailed.rows) == pytest.approx(2291.715, rel=0.02)


def test_per_kernel_aggregates_the_detailed_table() -> None:
    source, kernels = per_kernel(parse_profile(_text(TP1)))
    assert source == "detailed dispatch table, excluding 1 first run"
    assert sum(k.share for k in kernels) == pytest.approx(100.0, abs=1e-6)
    top = kernels[0]
    assert (top.op_type, top.func, top.calls) == ("conv2d", "conv1x1s1_gemm_fp32", 172)
    assert top.avg_ms == pytest.approx(1858.056, abs=1e-3)
    assert [k.avg_ms for k in kernels] == sorted((k.avg_ms for k in kernels), reverse=True)
    assert sum(k.calls for k in kernels) == 635
    concise = parse_profile(_text(TP1)).table("concise")
    assert concise is not None and len(kernels) == len(concise.rows) == 14  # the same grouping as the concise table
    assert {(k.op_type, k.kernel, k.func, k.calls) for k in kernels} == {
        (r.op_type, r.kernel, r.func, r.calls) for r in concise.rows}


def test_short_run_concise_tables_are_zero_but_kernels_are_not() -> None:
    """warmup 1 + repeats 2 <= 10 warm-ups: the concise tables are all 0.000; the detailed one is not."""
    profile = parse_profile(_text(SHORT))
    concise = profile.table("concise")
    assert concise is not None and concise.cycles == 3 and all(r.avg_ms == 0.0 for r in concise.rows)
    _, kernels = per_kernel(profile)
    assert kernels[0].avg_ms > 0 and sum(k.share for k in kernels) == pytest.approx(100.0)


def test_no_profile_and_bad_rows_are_parse_errors() -> None:
    stdout = (REAL / "tinypose128x96_t1_w1r12.stdout").read_text()
    assert not has_profile(stdout) and has_profile(_text(PD1))
    with pytest.raises(ParseError, match="no Paddle Lite profiler summary"):
        parse_profile(stdout)
    lines = _text(TP1).splitlines()
    lines[21] = "conv2d arm/float/NCHW 1.0 2.0"
    with pytest.raises(ParseError, match="line 22 has 4 fields"):
        parse_profile("\n".join(lines))
    lines[21] = lines[21 + 1].replace("0.538", "nan")
    with pytest.raises(ParseError, match="bad number"):
        parse_profile("\n".join(lines))


def _store_profiles(store: Store, run: str, path: Path, threads: int) -> None:
    source, kernels = per_kernel(parse_profile(_text(path)))
    case = BenchCase("pp-tinypose-128x96", "fp1", threads, warmup=1, repeats=12)
    store.add_op_profile(run, case, serial="vp-1", status="ok", kernels=kernels, source=source, avg_ms=1.0,
                         runner="benchmark_bin", raw_log=_text(path))


def test_store_and_report_top_kernels(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    run = store.new_run("test", {"devices": {"fp1": {"label": "vp"}},
                                 "models": {"pp-tinypose-128x96": {"flops": 81.56e6}}})
    _store_profiles(store, run, TP1, 1)
    _store_profiles(store, run, TP4, 4)
    store.add_op_profile(run, BenchCase("picodet-s-192", "fp1", 1), serial="vp-1", status="failed",
                         error="runner exit 134")
    store.close()
    store = Store(tmp_path / "s.db")
    profiles = store.op_profiles(run)
    assert [len(p.kernels) for p in profiles] == [14, 14, 0]
    plan = store.run(run).plan
    tables = ops_tables(plan, profiles, ["pp-tinypose-128x96/1t"])
    assert [t.title for t in tables] == ["Operators: vp/pp-tinypose-128x96/1t/pm0"]
    table = tables[0]
    assert len(table.rows) == 11 and table.rows[-1][1] == "(other 4 kernels)"
    shares = sum(float(r[-1].rstrip(" %")) for r in table.rows)
    assert shares == pytest.approx(100.0, abs=1.0)
    assert any("81.6 MFLOPs" in n for n in table.notes)
    failed = ops_tables(plan, profiles, ["picodet-s-192"])[0]
    assert failed.rows == () and failed.notes == ("failed: runner exit 134",)


def test_diff_of_two_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    plan = {"devices": {"fp1": {"label": "vp"}}}
    a, b = store.new_run("a", plan), store.new_run("b", plan)
    _store_profiles(store, a, TP1, 1)
    _store_profiles(store, b, SHORT, 1)
    _store_profiles(store, b, TP4, 4)
    tables, alone = diff_tables(plan, store.op_profiles(a), plan, store.op_profiles(b))
    assert alone == ["vp/pp-tinypose-128x96/4t/pm0"]
    row = tables[0].rows[0]
    assert row[:3] == ("conv2d", "arm/float/NCHW", "conv1x1s1_gemm_fp32")
    assert (row[3], row[4], row[5]) == ("1858.056", "1271.653", "-586.403")


def test_runs_export_and_import_carry_op_profiles_and_energy(tmp_path: Path) -> None:
    """An export holds the run's op profiles (kernels in order) and its cases' energy records; an import
    into another store gives them back the same, and an identical second import writes nothing."""
    from kpmobile.devices.energy import BatterySample, energy_of
    from kpmobile.store.exchange import export_run, import_run, read_export, write_export

    src = Store(tmp_path / "a.db")
    run = src.new_run("kpmobile bench", {"devices": {"fp1": {"label": "vp"}}})
    _store_profiles(src, run, TP1, 1)
    src.add_op_profile(run, BenchCase("picodet-s-192", "fp1", 1), serial="vp-1", status="failed",
                       error="runner exit 134")
    samples = [BatterySample("idle", i / 10, -250_000.0, 3_850_000.0, "Discharging") for i in range(5)]
    samples += [BatterySample("run", 1 + i / 10, -650_000.0, 3_850_000.0, "Discharging") for i in range(8)]
    energy = energy_of("/sys/class/power_supply/battery", samples, 12.5).to_json()
    case = BenchCase("pp-tinypose-128x96", "fp1", 1, warmup=1, repeats=12)
    src.add_case(run, case, serial="vp-1", status="ok", numbers={"avg_ms": 12.5},
                 extra={"flags": [], "energy": energy})
    src.finish_run(run, "done")
    data = read_export(write_export(export_run(src, run), tmp_path / "run.json"))
    assert [len(p["kernels"]) for p in data["op_profiles"]] == [14, 0]
    dst = Store(tmp_path / "b.db")
    assert not import_run(dst, data).already_present
    def same(profiles: list[Any]) -> list[Any]:
        return [replace(p, id=0) for p in profiles]  # row ids are each store's own

    assert same(dst.op_profiles(run)) == same(src.op_profiles(run))
    assert dst.op_profiles(run)[0].kernels[0].func == "conv1x1s1_gemm_fp32"
    (got,) = dst.cases(run)
    assert got.extra["energy"] == energy
    assert got.extra["energy"]["energy_mj"] == pytest.approx(19.25)  # (2.5025 - 0.9625) W x 12.5 ms
    assert import_run(dst, data).already_present
    out = kpmobile("report", "ops", run, "--db", str(tmp_path / "b.db"), "--format", "json", "--top", "5")
    assert out.returncode == 0 and len(json.loads(out.stdout)["tables"][0]["rows"]) == 6, out.stderr


@pytest.mark.parametrize(("path", "value", "message"), [
    (("op_profiles", 0, "kernels", 0, "share"), 250.0, "op_profiles.0.kernels.0.share"),
    (("op_profiles", 0, "kernels", 0, "avg_ms"), -1.0, "op_profiles.0.kernels.0.avg_ms"),
    (("op_profiles", 0, "kernels", 0, "calls"), "3", "op_profiles.0.kernels.0.calls"),
    (("op_profiles", 0, "model"), "a b; rm -rf /", "op_profiles.0.model"),
    (("op_profiles", 0, "run_id"), "20990101-000000-abcdef", "belongs to run"),
    (("cases", 0, "extra", "energy", "flags"), ["wired"], "extra.energy: flags.0"),
    (("cases", 0, "extra", "energy", "samples"), -2, "extra.energy: samples"),
])
def test_import_refuses_a_tampered_op_profile_or_energy_record(tmp_path: Path, path: tuple[Any, ...], value: Any,
                                                               message: str) -> None:
    from kpmobile.errors import ConfigError
    from kpmobile.store.exchange import export_run, import_run

    src = Store(tmp_path / "a.db")
    run = src.new_run("kpmobile bench", {"devices": {"fp1": {"label": "vp"}}})
    _store_profiles(src, run, TP1, 1)
    case = BenchCase("pp-tinypose-128x96", "fp1", 1, warmup=1, repeats=12)
    src.add_case(run, case, serial="vp-1", status="ok", numbers={"avg_ms": 12.5},
                 extra={"energy": {"samples": 3, "idle_samples": 3, "mean_w": 2.0, "idle_w": 1.0, "energy_mj": 12.5}})
    data = json.loads(json.dumps(export_run(src, run)))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    dst = Store(tmp_path / "b.db")
    with pytest.raises(ConfigError) as err:
        import_run(dst, data)
    assert message in str(err.value), str(err.value)
    assert dst.runs() == [] and dst.op_profiles(run) == []


def test_cell_patterns() -> None:
    assert matches("vp/m/4t/pm0", ["m/4t"]) and not matches("vp/m/1t/pm0", ["m/4t"])
    assert matches("vp/m/1t/pm0", []) and matches("vp/m/1t/pm0", ["x", "vp"])


def test_cli_parse_reads_a_real_profile() -> None:
    out = kpmobile("parse", str(TP1), "--json")
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["format"] == "paddle_lite_profile" and len(entry["kernels"]) == 14
    assert [t["kind"] for t in entry["tables"]] == ["detailed", "concise", "concise"]
    text = kpmobile("parse", str(PD1), "--top", "3")
    assert text.returncode == 0 and "conv1x1s1_gemm_fp32" in text.stdout and "#" in text.stdout


def test_cli_report_ops(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = Store(db)
    run = store.new_run("test", {"devices": {"fp1": {"label": "vp"}}})
    _store_profiles(store, run, TP1, 1)
    store.close()
    out = kpmobile("report", "ops", run, "--db", str(db), "--format", "json", "--top", "5")
    assert out.returncode == 0, out.stderr
    (table,) = json.loads(out.stdout)["tables"]
    assert len(table["rows"]) == 6 and table["cells"][0]["cell"] == "vp/pp-tinypose-128x96/1t/pm0"
    none = kpmobile("report", "ops", run, "--db", str(db), "--cell", "picodet-s-192")
    assert none.returncode != 0 and "error: run" in none.stderr and "--op-profile" in none.stderr
    assert cell_id({}, Store(db).op_profiles(run)[0]) == "vp-1/pp-tinypose-128x96/1t/pm0"


def test_profile_argv_swaps_runner_and_result() -> None:
    from kpmobile.sweep.costs import profile_argv

    argv = ["/data/local/tmp/kpmobile/bin/benchmark_bin", "--optimized_model_file=m.nb", "--threads=4",
            "--result_path=/r/x.txt"]
    assert profile_argv(argv, "/p/benchmark_bin", "/r/x.txt.ops.txt") == [
        "/p/benchmark_bin", "--optimized_model_file=m.nb", "--threads=4", "--result_path=/r/x.txt.ops.txt"]


@pytest.mark.e2e
@pytest.mark.slow
def test_op_profile_on_the_x86_phone_is_stored_failed_with_the_reason(adb_server: Any, virtual_phone_factory: Any,
                                                                       tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    db = tmp_path / "kp.db"
    res = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--device", phone.serial,
                   "--db", str(db), "--out", str(tmp_path / "out"), "--models", "pp-tinypose-128x96",
                   "--threads", "1", "--warmup", "1", "--repeats", "3", "--rounds", "2", "--op-profile", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    run = json.loads(res.stdout)["run_id"]
    (profile,) = Store(db).op_profiles(run)  # one per cell, not per round
    assert profile.status == "failed" and "paddlelite's Python API" in (profile.error or "")
    assert len(Store(db).cases(run)) == 2  # the latency rounds are untouched
    out = kpmobile("report", "ops", run, "--db", str(db))
    assert out.returncode == 0 and "failed: the x86 runner has no per-operator times" in out.stdout


def test_op_profile_on_the_host_is_refused(tmp_path: Path) -> None:
    res = kpmobile("bench", "--device", "host", "--op-profile", "--db", str(tmp_path / "kp.db"))
    assert res.returncode == 2 and "paddlelite's Python API has no profiler" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
