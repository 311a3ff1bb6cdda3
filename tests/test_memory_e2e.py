"""`kpmobile bench --memory` on the x86 virtual phone: kpmobile's lite_runner reports init / peak MB
from its own process (VmRSS, VmHWM), labelled as such, in one extra run per cell."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

from kpmobile.runners.benchmark_bin import MEMORY_OWN_PROCESS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_memory_per_cell_from_the_runner_process(adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    db = tmp_path / "kp.db"
    res = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(db), "--out",
                   str(tmp_path / "out"), "--models", "pp-tinypose-128x96", "--threads", "1", "--rounds", "2",
                   "--warmup", "1", "--repeats", "2", "--memory", "--device", phone.serial, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT round, record, extra, raw_log FROM cases WHERE run_id=? ORDER BY round",
                           (out["run_id"],)).fetchall()
    assert [r[0] for r in rows] == [0, 1]
    first, second = (json.loads(r[1]) for r in rows)
    extra = json.loads(rows[0][2])
    assert 0 < first["init_mb"] <= first["peak_mb"] and extra["memory"]["source"] == MEMORY_OWN_PROCESS
    assert second["peak_mb"] is None and "memory" not in json.loads(rows[1][2])  # one memory run per cell
    assert rows[0][3].count("======= Perf Info =======") == 2 and "--- memory profile run ---" in rows[0][3]
    assert "emulated" not in extra and first["threads_applied"] is False  # x86 MobileConfig
    (cell,) = out["table"]["cells"]
    assert cell["peak_mb"] == first["peak_mb"] and cell["memory_source"] == MEMORY_OWN_PROCESS
    assert not cell["emulated"] and cell["rounds"] == 2
    shown = kpmobile("report", "memory", "--db", str(db), "--format", "md")
    assert shown.returncode == 0 and f"{first['peak_mb']:.1f} MB" in shown.stdout and "VmHWM" in shown.stdout
