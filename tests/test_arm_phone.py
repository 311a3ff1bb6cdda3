"""The ARM virtual phone with Paddle Lite's real benchmark_bin (v2.13-rc, aarch64) under qemu-aarch64.

Everything goes through the real adb server. Under qemu one PP-TinyPose inference takes most of a
second, so warmup and repeats stay tiny. These tests skip, saying why, only where qemu-user and the
arm64 libraries are not installed (scripts/test installs them when it runs as root) or the shared
runner is absent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

from kpmobile.devices.virtual_phone import faults
from kpmobile.devices.virtual_phone.emulation import missing_parts

REPO = Path(__file__).resolve().parents[1]
_RUNNER_AT = Path("paddle-lite/v2.13-rc/linux-aarch64/benchmark_bin")


def shared_runner() -> Path | None:
    """Give the shared aarch64 benchmark_bin: $KPMOBILE_ARM_RUNNER, else ../shared or shared/ beside the checkout."""
    env = os.environ.get("KPMOBILE_ARM_RUNNER")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / _RUNNER_AT, REPO / "shared" / _RUNNER_AT, Path("/work/shared") / _RUNNER_AT]
    return next((c for c in candidates if c.is_file()), None)


RUNNER = shared_runner()
_MISSING = missing_parts()
pytestmark = [
    pytest.mark.e2e, pytest.mark.slow,
    pytest.mark.skipif(bool(_MISSING), reason="cannot run aarch64 code here: missing " + "; ".join(_MISSING)),
    pytest.mark.skipif(RUNNER is None, reason="the shared aarch64 benchmark_bin (../shared/" + str(_RUNNER_AT)
                       + ") is absent; set KPMOBILE_ARM_RUNNER"),
]
MODELS = "pp-tinypose-128x96,picodet-s-192"
TINY = ["--warmup", "1", "--repeats", "2", "--rounds", "1"]  # qemu is slow: one round


def arm_phone(factory: Any) -> Any:
    return factory(profile="kirin980", extra_args=["--abi", "arm64-v8a"])


def bench(server: str, tmp: Path, *extra: str) -> Any:
    return kpmobile("bench", "--adb-server", server, "--no-virtual", "--db", str(tmp / "kp.db"),
                    "--out", str(tmp / "out"), "--runner", str(RUNNER), "--json", *extra)


def rows_of(tmp: Path, run_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(tmp / "kp.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM cases WHERE run_id=? ORDER BY model, threads",
                                            (run_id,))]


def test_shell_forms_run_aarch64_through_qemu_and_wrong_abi_fails_as_on_a_phone(
        adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = arm_phone(virtual_phone_factory)
    assert RUNNER is not None
    adb = adb_server.adb
    assert adb("-s", phone.serial, "push", str(RUNNER), "/data/local/tmp/x/benchmark_bin").returncode == 0
    assert adb("-s", phone.serial, "push", "/bin/ls", "/data/local/tmp/x/x86bin").returncode == 0
    adb("-s", phone.serial, "shell", "chmod 755 /data/local/tmp/x/benchmark_bin /data/local/tmp/x/x86bin")
    props = adb("-s", phone.serial, "shell", "getprop ro.product.cpu.abi; getprop ro.kernel.qemu").stdout.split()
    assert props == ["arm64-v8a", "1"]
    assert "CPU implementer" in adb("-s", phone.serial, "shell", "cat /proc/cpuinfo").stdout
    listed = kpmobile("devices", "--adb-server", adb_server.address, "--json")
    entry = next(d for d in json.loads(listed.stdout) if d["serial"] == phone.serial)
    assert (entry["abi"], entry["profile"], entry["emulated"]) == ("arm64-v8a", "kirin980", True)
    assert len([c for cl in entry["clusters"] for c in cl["cores"]]) == 8
    for form in ("cd /data/local/tmp/x && ./benchmark_bin", "/data/local/tmp/x/benchmark_bin",
                 "sh -c 'cd /data/local/tmp/x; exec ./benchmark_bin'", "timeout 30 /data/local/tmp/x/benchmark_bin",
                 "cd /data/local/tmp && x/benchmark_bin & wait $!"):
        res = adb("-s", phone.serial, "shell", form + "; echo rc=$?")
        assert "For detailed usage info: ./benchmark_bin --help" in res.stdout and "rc=0" in res.stdout, (form, res)
    res = adb("-s", phone.serial, "shell", "cd /data/local/tmp/x && ./x86bin; echo rc=$?")
    assert "/system/bin/sh: ./x86bin: not executable: 64-bit ELF file" in res.stdout + res.stderr
    assert "rc=1" in res.stdout.split()  # mksh's errorf: status 1


def test_real_benchmark_bin_on_the_arm_phone(adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    phone = arm_phone(virtual_phone_factory)
    # An x86_64 ELF given as the ARM runner is refused before anything is pushed.
    refused = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(tmp_path / "x.db"),
                       "--out", str(tmp_path / "x"), "--runner", "/bin/ls", "--models", "pp-tinypose-128x96")
    assert refused.returncode != 0 and "x86_64" in refused.stderr and "arm64-v8a" in refused.stderr
    assert not (phone.root / "data/local/tmp/kpmobile").exists()

    res = bench(adb_server.address, tmp_path, "--models", MODELS, "--threads", "1,4", *TINY)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["ok"] == 4 and out["failed"] == 0
    rows = rows_of(tmp_path, out["run_id"])
    assert len(rows) == 4
    for row in rows:
        assert "benchmark_bin version: v2.13-rc" in row["raw_log"] and "======= Runtime Info =======" in row["raw_log"]
        assert "Device Info" not in row["raw_log"]  # an ARM Linux build prints none
        record, extra = json.loads(row["record"]), json.loads(row["extra"])
        assert record["threads"] == row["threads"] and record["threads_applied"] is True
        assert record["runner_version"] == "v2.13-rc" and row["runner_version"] == "v2.13-rc"
        assert extra["emulated"] is True and "echo" not in extra
        # qemu's threads run where the host puts them: cores recorded, not judged against the profile's.
        assert "core-mismatch" not in extra.get("flags", []) and extra["cores"]["samples"] > 0
        check = extra["output_check"]
        assert check["ok"] is True, check
        assert not any(f.startswith("outputs-diverge") for f in extra.get("flags", []))
        if row["model"] == "pp-tinypose-128x96":  # float heatmap compared, int64 argmax not
            assert check["not_comparable"] == ["output 1 (int64): not comparable on benchmark_bin (read as float)"]
        else:
            assert check.get("not_comparable", []) == []
        print(f"ARM vs x86 {row['model']} {row['threads']}T: worst rel {check['max_rel']:.3g}")
    table = out["table"]
    assert all(cell.endswith("(emulated)") and " ms" in cell for r in table["rows"] for cell in r[1:])
    assert all(c["emulated"] is True and c["gflops"] is None for c in table["cells"])
    roofline = [t for t in out["tables"] if t["title"].startswith("Roofline")]
    for t in roofline:  # refuses GFLOP/s from emulated cells
        assert all(r[i] == "- (emulated: no roofline)" for r in t["rows"] for i in range(3, len(r), 2))

    shown = kpmobile("runs", "show", out["run_id"], "--db", str(tmp_path / "kp.db"), "--json")
    assert shown.returncode == 0, shown.stderr
    shown_json = json.loads(shown.stdout)
    assert shown_json["scaling"] == []  # emulated timings: no scaling conclusion
    scaling = next(t for t in shown_json["tables"] if t["title"] == "Thread scaling")
    assert scaling["rows"] == []
    plots = kpmobile("report", "plots", "--out", str(tmp_path / "plots"), "--run", out["run_id"],
                     "--db", str(tmp_path / "kp.db"), "--json")
    assert plots.returncode == 0, plots.stderr
    skipped = {p["name"]: p["note"] for p in json.loads(plots.stdout)["skipped"]}
    assert "emulated" in skipped["roofline.png"]

    # --memory: one extra invocation per cell with the memory profile, init and peak MB stored.
    res = bench(adb_server.address, tmp_path, "--models", MODELS, "--threads", "1,4", *TINY, "--memory")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["ok"] == 4
    for row in rows_of(tmp_path, out["run_id"]):
        record, extra = json.loads(row["record"]), json.loads(row["extra"])
        assert 0 < record["init_mb"] < record["peak_mb"], record
        assert extra["memory"]["source"].startswith("benchmark_bin memory monitor")
        assert "--- memory profile run ---" in row["raw_log"] and "start monitoring memory!" in row["raw_log"]
    assert all(c["peak_mb"] and c["init_mb"] for c in out["table"]["cells"])
    memory = kpmobile("report", "memory", "--db", str(tmp_path / "kp.db"), "--run", out["run_id"],
                      "--format", "json")
    assert memory.returncode == 0, memory.stderr
    assert all(cell.endswith(" MB") for r in json.loads(memory.stdout)["rows"] for cell in r[1:])


def test_faults_with_the_real_runner_are_stored_with_one_line_reasons(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.convert import convert_nb

    phone = arm_phone(virtual_phone_factory)
    nb = convert_nb(ensure_model(resolve("pp-tinypose-128x96")), "arm").path
    cut = phone.root / "truncated.nb"
    cut.write_bytes(nb.read_bytes()[: nb.stat().st_size // 3])
    abort = "runner exited 134 (SIGABRT): std::exception"
    expected = {
        ("swap-nb", str(cut)): [abort, "corrupt, truncated or wrong-version .nb"],
        ("input-shape", "2,3,128,96"): [abort, "input shape or batch"],
        ("drop-flag", "input_shape"): ["runner printed its usage and exited 0", "missing --input_shape"],
    }
    for (mode, arg), wanted in expected.items():
        faults.set_runner_fault(phone.root, mode, arg)
        res = bench(adb_server.address, tmp_path, "--models", "pp-tinypose-128x96", "--threads", "1",
                    "--warmup", "0", "--repeats", "1", "--rounds", "1")
        assert res.returncode == 1, res.stderr[-3000:]
        (row,) = rows_of(tmp_path, json.loads(res.stdout)["run_id"])
        assert row["status"] == "failed" and "\n" not in row["error"], row["error"]
        assert all(w in row["error"] for w in wanted), (mode, row["error"])
    faults.set_runner_fault(phone.root, "none")


def test_bench_virtual_arm_is_a_dry_run_of_the_real_path(adb_server: Any, tmp_path: Path) -> None:
    res = kpmobile("bench", "--adb-server", adb_server.address, "--virtual", "arm", "--runner", str(RUNNER),
                   "--db", str(tmp_path / "kp.db"), "--out", str(tmp_path / "out"), "--models", "pp-tinypose-128x96",
                   "--threads", "1", "--warmup", "0", "--repeats", "1", "--rounds", "1", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    (row,) = rows_of(tmp_path, out["run_id"])
    assert row["status"] == "ok" and "benchmark_bin version: v2.13-rc" in row["raw_log"]
    with sqlite3.connect(tmp_path / "kp.db") as db:
        (plan,) = db.execute("SELECT plan FROM runs WHERE id=?", (out["run_id"],)).fetchone()
    (device,) = json.loads(plan)["devices"].values()
    assert device["abi"] == "arm64-v8a" and device["profile"] == "kirin980" and device["emulated"] is True
    assert out["table"]["rows"][0][1].endswith("(emulated)")
