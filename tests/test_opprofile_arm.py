"""Time per operator end to end: an ARM virtual phone (kirin980, qemu-aarch64) runs the real benchmark_bin
for the latency rounds and the shared LITE_WITH_PROFILE build for one extra invocation per cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

from kpmobile.store import Store

SHARED = Path("/work/shared/paddle-lite/v2.13-rc")
REPO_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "paddle-lite" / "v2.13-rc"


def _shared(sub: str) -> Path | None:
    return next((p / sub / "benchmark_bin" for p in (REPO_SHARED, SHARED) if (p / sub / "benchmark_bin").is_file()),
                None)


def _missing() -> list[str]:
    try:
        from kpmobile.devices.virtual_phone.emulation import missing_parts
    except ImportError:
        return ["the ARM virtual phone (kpmobile.devices.virtual_phone.emulation)"]
    return list(missing_parts())


RUNNER, PROFILER = _shared("linux-aarch64"), _shared("linux-aarch64-profile")
MISSING = _missing()
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.skipif(bool(MISSING), reason="cannot run aarch64 code here: missing " + "; ".join(MISSING))
@pytest.mark.skipif(RUNNER is None or PROFILER is None,
                    reason="the shared aarch64 benchmark_bin builds (../shared/paddle-lite/v2.13-rc) are absent")
def test_sweep_on_the_arm_phone_stores_each_cells_operators(adb_server: Any, virtual_phone_factory: Any,
                                                            tmp_path: Path) -> None:
    phone = virtual_phone_factory(profile="kirin980", extra_args=["--abi", "arm64-v8a"])
    db = tmp_path / "kp.db"
    res = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--device", phone.serial,
                   "--db", str(db), "--out", str(tmp_path / "out"), "--runner", str(RUNNER), "--op-profile",
                   "--op-runner", str(PROFILER), "--models", "pp-tinypose-128x96", "--threads", "1,4",
                   "--warmup", "1", "--repeats", "2", "--rounds", "1", "--json", timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    run = json.loads(res.stdout)["run_id"]
    profiles = Store(db).op_profiles(run)
    assert sorted(p.threads for p in profiles) == [1, 4]
    for p in profiles:
        assert p.status == "ok", p.error
        assert p.source == "detailed dispatch table, excluding 1 first run"
        assert len(p.kernels) >= 10 and abs(sum(k.share for k in p.kernels) - 100) < 1e-6
        assert p.kernels[0].op_type == "conv2d" and p.runner == "benchmark_bin"
        assert "Detailed Dispatch Profiler Summary" in (p.raw_log or "")
    rows = Store(db).cases(run)
    assert len(rows) == 2 and all("Profiler Summary" not in (r.raw_log or "") for r in rows)  # kept apart
    out = kpmobile("report", "ops", run, "--db", str(db), "--cell", "1t", "--format", "json")
    assert out.returncode == 0, out.stderr
    (table,) = json.loads(out.stdout)["tables"]
    assert len(table["rows"]) == 11  # top 10 and the rest
    assert abs(sum(float(r[-1].rstrip(" %")) for r in table["rows"]) - 100) <= 1
    text = kpmobile("report", "ops", run, "--db", str(db), "--cell", "4t")
    print(text.stdout)
    assert "conv1x1s1_gemm_fp32" in text.stdout


QEMU = shutil.which("qemu-aarch64")
CROSS = Path("/usr/aarch64-linux-gnu/lib/libstdc++.so.6")


@pytest.mark.skipif(QEMU is None or not CROSS.exists() or PROFILER is None,
                    reason="needs qemu-aarch64, the arm64 cross libraries and the shared profiling benchmark_bin")
def test_run_op_profile_through_adb_with_the_real_profiling_runner(adb_server: Any, virtual_phone_factory: Any,
                                                                   tmp_path: Path) -> None:
    """The profiling invocation as the sweep makes it (adb shell, stderr apart, parsed): here the x86 phone
    starts the aarch64 build through qemu itself, so this runs before the ARM virtual phone exists."""
    from kpmobile.devices.android import Phone
    from kpmobile.paths import DEVICE_DIR
    from kpmobile.sweep.costs import profile_argv, run_op_profile
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.convert import convert_nb

    assert PROFILER is not None
    phone_proc = virtual_phone_factory()
    phone = Phone(phone_proc.serial, adb_server.address)
    nb = convert_nb(ensure_model(resolve("pp-tinypose-128x96")), "arm").path
    phone.push(PROFILER, f"{DEVICE_DIR}/bin/profile/benchmark_bin", 0o755)
    phone.push(nb, f"{DEVICE_DIR}/models/tp.nb")
    argv = [f"{DEVICE_DIR}/bin/benchmark_bin", f"--optimized_model_file={DEVICE_DIR}/models/tp.nb",
            "--input_shape=1,3,128,96", "--threads=1", "--power_mode=0", "--warmup=1", "--repeats=2",
            "--backend=arm", f"--result_path={DEVICE_DIR}/r.txt"]
    argv = profile_argv(argv, f"{DEVICE_DIR}/bin/profile/benchmark_bin", f"{DEVICE_DIR}/r.ops.txt")
    out = run_op_profile(phone, ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", *argv], DEVICE_DIR, 600)
    assert out.status == "ok", out.error
    assert out.kernels[0].op_type == "conv2d" and len(out.kernels) == 14
    assert abs(sum(k.share for k in out.kernels) - 100) < 1e-6
    assert out.avg_ms is not None and out.avg_ms > 0  # the profiling build's own stdout avg
    assert "--- stderr ---" in (out.raw_log or "") and "Concise Dispatch Profiler Summary" in (out.raw_log or "")
