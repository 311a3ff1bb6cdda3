"""Plots (PNG) and the one-file HTML report on a synthetic store; Chromium renders the report."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kpmobile.records import BenchCase, DeviceInfo, RunPlan
from kpmobile.report.html import html_report
from kpmobile.report.plots import roofline_points, run_plots, write_plots
from kpmobile.store import Store

MODELS = {"pp-tinypose-128x96": {"display": "PP-TinyPose-128x96 (pose)"},
          "picodet-s-192": {"display": "PicoDet-s-192x192 (det)"}}
DEVICES = {"fpA": {"label": "Kirin 980", "serial": "A"}, "fpB": {"label": "Snapdragon 660", "serial": "B"}}
FLOPS = {"pp-tinypose-128x96": 80e6, "picodet-s-192": None}  # picodet unknown: its roofline points drop


def _store(tmp_path: Path, pipelines: bool = True) -> tuple[Store, str]:
    store = Store(tmp_path / "kp.db")
    for fp, d in DEVICES.items():
        store.upsert_device(DeviceInfo(serial=d["serial"], state="device", brand="brand", soc=d["label"],
                                       fingerprint=fp, abi="arm64-v8a"))
    run = store.new_run("kpmobile bench", {"models": MODELS, "devices": DEVICES, "threads": [1, 2, 4]})
    for fp in DEVICES:
        for rnd in range(3):
            for i, model in enumerate(MODELS):
                for t in (1, 2, 4):
                    ms = (30 + 20 * i) * (1.4 if fp == "fpB" else 1) / t ** 0.7 + rnd * 0.3
                    case = BenchCase(model=model, device=fp, threads=t, round=rnd)
                    store.add_case(run, case, serial=fp, status="ok", numbers={"avg_ms": ms}, raw_log="log")
            if pipelines:
                for persons in (1, 3, 6):
                    case = BenchCase(model="picodet-s-192+pp-tinypose-128x96", device=fp, threads=4, round=rnd,
                                     pipeline="picodet-s-192+pp-tinypose-128x96", persons=persons)
                    store.add_case(run, case, serial=fp, status="ok", numbers={"avg_ms": 20 + 9 * persons},
                                   raw_log="log")
    store.finish_run(run, "complete")
    return store, run


def _png_size(path: Path) -> tuple[int, int]:
    from matplotlib import image

    pixels = image.imread(str(path))
    return int(pixels.shape[1]), int(pixels.shape[0])


def test_plots_are_written_as_pngs_of_the_expected_size(tmp_path: Path) -> None:
    store, run = _store(tmp_path)
    plots = run_plots(store.run(run), store.cases(run), FLOPS)
    written = write_plots(plots, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == ["latency-by-device.png", "latency-vs-threads-kirin-980-fpA.png",
                     "latency-vs-threads-snapdragon-660-fpB.png", "pipeline-vs-persons.png", "roofline.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        assert _png_size(path) == (800, 500)


def test_pipeline_plot_is_skipped_with_a_note_and_unknown_flops_drop_points(tmp_path: Path) -> None:
    store, run = _store(tmp_path, pipelines=False)
    row, cases = store.run(run), store.cases(run)
    plots = {p.name: p for p in run_plots(row, cases, {})}
    assert plots["pipeline-vs-persons.png"].png is None and "no pipeline cases" in plots["pipeline-vs-persons.png"].note
    assert plots["roofline.png"].png is None and "no model FLOPs" in plots["roofline.png"].note
    points = roofline_points(row, cases, FLOPS)
    assert {p["model"] for p in points} == {"pp-tinypose-128x96"} and len(points) == 6
    assert all(p["achieved_gflops_s"] > 0 and p["gflops"] == pytest.approx(0.16) for p in points)


def _report(tmp_path: Path) -> Path:
    store, run = _store(tmp_path)
    text = html_report(store.run(run), store.cases(run), store.devices(), FLOPS)
    path = tmp_path / "report.html"
    path.write_text(text, encoding="utf-8")
    return path


def test_html_report_is_one_self_contained_file(tmp_path: Path) -> None:
    text = _report(tmp_path).read_text()
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    assert not re.search(r"""(src|href)=["'](?!data:)""", text), "the report must not load anything"
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 5 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    for words in ("Benchmark on Mobile", "Thread scaling", "Rounds per cell", "fpA", "Snapdragon 660",
                  "kpmobile bench", "PP-TinyPose-128x96 (pose)"):
        assert words in text


def chromium() -> str | None:
    """Give the path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
def test_chromium_renders_a_non_blank_report(tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium on PATH: scripts/setup installs Debian's chromium when run as root with apt")
    report = _report(tmp_path)
    shot = tmp_path / "shot.png"
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
            report.as_uri()]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.exists(), res.stderr[-2000:]
    assert _png_size(shot) == (1280, 2000)
    assert_not_blank(shot)


def assert_not_blank(shot: Path) -> None:
    """Fail unless the screenshot holds many colours and a good share of non-white pixels."""
    import numpy as np
    from matplotlib import image

    rgb = image.imread(str(shot))[:, :, :3]
    levels = np.round(rgb * 255).astype(np.uint8).reshape(-1, 3)
    colours = len(np.unique(levels, axis=0))
    non_white = float((levels.min(axis=1) < 240).mean())
    assert colours > 50, f"only {colours} distinct colours: the page looks blank"
    assert non_white > 0.05, f"only {non_white:.1%} non-white pixels: the page looks blank"


def test_run_flops_prefers_the_plan_and_measures_nothing_when_told(tmp_path: Path) -> None:
    from kpmobile.report.plots import run_flops

    store, run = _store(tmp_path, pipelines=True)
    row = store.run(run)
    plan = {**row.plan.to_json(),
            "models": {**MODELS, "pp-tinypose-128x96": {**MODELS["pp-tinypose-128x96"], "flops": 8e7}}}
    row = type(row)(**{**row.__dict__, "plan": RunPlan.from_json(plan)})
    assert run_flops(row, store.cases(run), measure=None) == {"pp-tinypose-128x96": 8e7, "picodet-s-192": None}


def test_report_reads_records_and_the_store_only() -> None:
    """report/ imports no sweep, zoo, devices, runners or cli (STYLE.md's layering; the backends' name table,
    kpmobile.backends.registry, is plain data and allowed)."""
    import ast

    import kpmobile.report

    banned = ("kpmobile.sweep", "kpmobile.zoo", "kpmobile.devices", "kpmobile.runners", "kpmobile.cli")
    found = []
    for path in sorted(Path(kpmobile.report.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n.startswith(banned)]
    assert found == []
