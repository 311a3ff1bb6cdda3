"""`kpmobile runs` and `report plots|html` on real sweeps: virtual phone, real adb server, real Paddle Lite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# 4 rounds: where rounds disagree (as on a shared host), a round's iterations count as little more than one
# sample, and the exact test needs 4 a side before it can give any verdict, "same" included.
SWEEP = ["--models", "pp-tinypose-128x96", "--threads", "1,4", "--warmup", "1", "--repeats", "3", "--rounds", "4"]
HOGS = 4  # busy processes on the virtual phone's CPU: the runner gets about a fifth of it


def ok_json(*args: str) -> Any:
    res = kpmobile(*args, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def pin(pid: int, cpu: int) -> None:
    """Bind every thread of process `pid` to one CPU; processes it starts later inherit that."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


@contextmanager
def cpu_hog(cpu: int, processes: int = HOGS) -> Iterator[None]:
    """Keep `processes` Python busy-loops running on `cpu` (the virtual phone's); stop them afterwards.

    Each hog gets its own session: with kernel autogroup scheduling, CPU time is shared between
    sessions first, and the virtual phone starts every runner in a new session, so hogs sharing
    one session would only ever take half the CPU from it, whatever their number.
    """
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(processes)]
    try:
        for proc in hogs:
            pin(proc.pid, cpu)
        yield
    finally:
        for proc in hogs:
            proc.kill()
        for proc in hogs:
            proc.wait(timeout=10)


def test_compare_flags_a_run_slowed_by_a_cpu_hog_and_reports_render(adb_server: Any, virtual_phone_factory: Any,
                                                                    tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    # The phone (so every runner it starts) and, in the second run, the hogs share one CPU: the slowdown
    # is then about HOGS + 1 fold whatever else this machine runs, while other load spreads to the other CPUs.
    cpu = min(os.sched_getaffinity(0))
    pin(phone.process.pid, cpu)
    db = str(tmp_path / "kp.db")
    bench = ["bench", "--adb-server", adb_server.address, "--no-virtual", "--device", phone.serial, "--db", db,
             "--out", str(tmp_path / "out"), *SWEEP]
    normal = ok_json(*bench)["run_id"]
    with cpu_hog(cpu):
        slowed = ok_json(*bench)["run_id"]

    # A run against itself: every cell is "same", and the gate passes.
    same = ok_json("runs", "compare", normal, normal, "--db", db, "--fail-above", "10")
    assert len(same["cells"]) == 2 and {c["verdict"] for c in same["cells"]} == {"same"}

    # The hogged run: every cell significantly slower, and --fail-above 10 exits non-zero.
    res = kpmobile("runs", "compare", normal, slowed, "--db", db, "--fail-above", "10", "--json")
    assert res.returncode == 1, res.stdout[-3000:]
    cells = json.loads(res.stdout)["cells"]
    assert [c["verdict"] for c in cells] == ["slower", "slower"], cells
    assert all(c["change_pct"] > 10 for c in cells) and len(json.loads(res.stdout)["regressions"]) == 2
    assert "regression: 2 cell(s) slower by more than 10%" in res.stderr
    table = kpmobile("runs", "compare", normal, slowed, "--db", db)
    assert table.returncode == 0 and "slower" in table.stdout and "PP-TinyPose-128x96 (pose) 4-threads" in table.stdout

    listed = ok_json("runs", "list", "--db", db)
    assert [r["id"] for r in listed] == [normal, slowed] and all(r["ok"] == 8 for r in listed)
    shown = ok_json("runs", "show", normal, "--db", db)
    assert shown["run"]["id"] == normal and len(shown["scaling"]) == 1
    scaling = shown["scaling"][0]
    assert scaling["threads"] == 4 and scaling["ci"][0] <= scaling["speedup"] <= scaling["ci"][1]
    assert "did not apply --threads" in scaling["warning"]  # the x86 runner says so in its log

    _check_plots(db, normal, tmp_path / "plots")
    _check_html(db, slowed, tmp_path)
    _check_export_import(db, slowed, tmp_path)


def _png_size(path: Path) -> tuple[int, int]:
    from matplotlib import image

    pixels = image.imread(str(path))
    return int(pixels.shape[1]), int(pixels.shape[0])


def _check_plots(db: str, run: str, out: Path) -> None:
    made = ok_json("report", "plots", "--out", str(out), "--run", run, "--db", db)
    names = {Path(p).name for p in made["files"]}
    assert "latency-by-device.png" in names and any(n.startswith("latency-vs-threads-") for n in names)
    assert [s["name"] for s in made["skipped"] if s["name"] != "roofline.png"] == ["pipeline-vs-persons.png"]
    for path in made["files"]:
        assert Path(path).stat().st_size > 10_000 and _png_size(Path(path)) == (800, 500)


def _check_html(db: str, run: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    res = kpmobile("report", "html", "--out", str(report), "--run", run, "--db", db)
    assert res.returncode == 0, res.stderr[-3000:]
    text = report.read_text()
    assert run in text and "Thread scaling" in text and text.count("data:image/png;base64,") >= 2
    assert report.stat().st_size > 30_000
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH (scripts/setup installs Debian's chromium as root): screenshot not checked")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chromium'}", f"--screenshot={shot}", "--window-size=1280,2000",
                    report.as_uri()], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.exists() and _png_size(shot) == (1280, 2000)
    import numpy as np
    from matplotlib import image

    levels = np.round(image.imread(str(shot))[:, :, :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(levels, axis=0)) > 50 and (levels.min(axis=1) < 240).mean() > 0.05


def _check_export_import(db: str, run: str, tmp_path: Path) -> None:
    exported = tmp_path / "run.json"
    info = ok_json("runs", "export", run, "--out", str(exported), "--db", db)
    assert info["cases"] == 8 and info["devices"] == 1
    data = json.loads(exported.read_text())
    assert data["schema"] == "kpmobile-run" and data["version"] == 2
    assert all("Perf Info" in c["raw_log"] for c in data["cases"])
    other = str(tmp_path / "other.db")
    first = ok_json("runs", "import", str(exported), "--db", other)
    assert first == {**first, "run_id": run, "cases": 8, "already_present": False}
    assert ok_json("runs", "import", str(exported), "--db", other)["already_present"] is True
    tables = [ok_json("runs", "show", run, "--db", where)["tables"][0] for where in (other, db)]
    assert tables[0] == tables[1]
    data["version"] = 3
    exported.write_text(json.dumps(data))
    res = kpmobile("runs", "import", str(exported), "--db", other)
    assert res.returncode == 2 and "version 3, newer than this kpmobile reads (2)" in res.stderr
