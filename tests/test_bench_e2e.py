"""The walking skeleton end to end: real adb server, virtual phones, real Paddle Lite, real SQLite."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST
from conftest import run_kpmobile as kpmobile

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

def bench_json(server: str, tmp: Path, *extra: str) -> dict[str, Any]:
    res = kpmobile("bench", "--adb-server", server, "--no-virtual", "--db", str(tmp / "kp.db"),
                   "--out", str(tmp / "out"), *FAST, "--json", *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_bench_two_virtual_phones_then_a_warm_rerun(adb_server: Any, virtual_phone_factory: Any,
                                                    tmp_path: Path) -> None:
    a = virtual_phone_factory()
    b = virtual_phone_factory()
    first = bench_json(adb_server.address, tmp_path)
    assert first["ok"] == 12 and first["failed"] == 0
    header = first["table"]["header"]
    assert header[0] == "Model" and len(header) == 1 + 2 * 2
    assert any(a.serial in h and "(1-thread)" in h for h in header)
    assert any(b.serial in h and "(4-threads)" in h for h in header)
    rows = first["table"]["rows"]
    assert [r[0] for r in rows] == ["PP-TinyPose-128x96 (pose)", "PicoDet-s-192x192 (det)", "PicoDet-s-320x320 (det)"]
    assert all(" ms (1 round)" in cell and float(cell.split()[0]) > 0 for r in rows for cell in r[1:])
    assert first["pushes"] >= 8  # runner + 3 models on each phone

    with sqlite3.connect(tmp_path / "kp.db") as db:
        stored = db.execute(
            "SELECT model, threads, status, avg_ms, raw_log, model_hash, runner_version, device_fp"
            " FROM cases WHERE run_id=?", (first["run_id"],)).fetchall()
    assert len(stored) == 12
    assert all(s[2] == "ok" and s[3] > 0 and "Perf Info" in s[4] and s[5] and s[6] for s in stored)
    assert len({s[7] for s in stored}) == 2
    pulled = list((tmp_path / "out" / first["run_id"]).rglob("*.txt"))
    assert len(pulled) == 12

    res = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(tmp_path / "kp.db"),
                   "--out", str(tmp_path / "out"), *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "converted 0 (cached 3)" in res.stdout and "pushed 0 files (already on device 8)" in res.stdout
    assert "PP-TinyPose-128x96 (pose)" in res.stdout

    report = kpmobile("report", "mobile", "--db", str(tmp_path / "kp.db"), "--run", first["run_id"],
                      "--format", "json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["rows"] == rows


def test_devices_json_reports_sdm660_for_a_redmi_note_7_dump(adb_server: Any, virtual_phone_factory: Any) -> None:
    dump = Path(__file__).parent / "data" / "getprop" / "redmi_note7.txt"
    phone = virtual_phone_factory(getprop=dump)
    res = kpmobile("devices", "--adb-server", adb_server.address, "--json")
    assert res.returncode == 0, res.stderr
    entry = next(d for d in json.loads(res.stdout) if d["serial"] == phone.serial)
    assert entry["soc"] == "sdm660" and entry["profile"] == "sdm660" and entry["abi"] == "x86_64"
    assert entry["model"] == "Redmi Note 7" and entry["state"] == "device"


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_bad_input_gives_one_line_errors_and_loses_nothing(adb_server: Any, virtual_phone_factory: Any,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "kp.db"
    base = ["bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(db), "--out", str(tmp_path), *FAST]
    # An empty adb server: no device, and --no-virtual.
    line = _one_line_error(kpmobile(*base))
    assert "no phone is attached" in line and "--no-virtual" in line

    x86 = virtual_phone_factory()
    kept = bench_json(adb_server.address, tmp_path, "--models", "pp-tinypose-128x96", "--threads", "1",
                      "--device", x86.serial)
    assert kept["ok"] == 1
    arm = virtual_phone_factory(extra_args=["--abi", "arm64-v8a"])

    line = _one_line_error(kpmobile(*base, "--models", "no-such-model"))
    assert "unknown model 'no-such-model'" in line and "pp-tinypose-128x96" in line

    line = _one_line_error(kpmobile(*base, "--models", "pp-tinypose-128x96", "--device", arm.serial))
    assert "no runner binary for ARM phone" in line and "--runner" in line

    line = _one_line_error(kpmobile(*base, "--models", "pp-tinypose-128x96", "--device", arm.serial,
                                    "--runner", "/bin/ls"))
    assert "x86_64" in line and "arm64-v8a" in line

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT run_id, status, avg_ms FROM cases").fetchall()
    assert rows == [(kept["run_id"], "ok", rows[0][2])] and rows[0][2] > 0


def test_phone_outputs_are_checked_against_the_host_reference(adb_server: Any, virtual_phone_factory: Any,
                                                              tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    out = bench_json(adb_server.address, tmp_path, "--models", "pp-tinypose-128x96", "--threads", "1",
                     "--device", phone.serial)
    with sqlite3.connect(tmp_path / "kp.db") as db:
        (extra,) = db.execute("SELECT extra FROM cases WHERE run_id=?", (out["run_id"],)).fetchone()
    check = json.loads(extra)["output_check"]
    # The virtual phone runs the same x86 .nb on the same all-ones input: the printed stats must agree.
    assert check["ok"] is True and check["max_rel"] <= check["rtol"], check
