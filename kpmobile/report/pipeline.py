"""The pipeline table: detector + pose per device x threads x persons, each stage and the total.

Measured cells come from pipeline cases (kpmobile's pipeline runner or PaddleDetection's lite
main, parsed from the demo's output): stages are per image, the pose stages summed over the
persons. Composed cells (ARM phones without a pipeline runner) are det + persons x pose from the
single-model cases of the same run: they have inference times only, and say "composed".
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.records import RunPlan
from kpmobile.report.mobile import cell_stats, latency_text, threads_label
from kpmobile.report.table import Table
from kpmobile.store import CaseRow

STAGES = ("det_pre", "det_infer", "det_post", "crop", "pose_pre", "pose_infer", "pose_post")
HEADER = ("Pipeline", "Device", "Threads", "Persons", "Det pre", "Det infer", "Det post", "Crop",
          "Pose pre", "Pose infer", "Pose post", "Total", "Mode")


def stages_of(row: CaseRow) -> dict[str, float]:
    """Give one pipeline case's stages per image (ms); the pose stages for all its persons."""
    st = (row.record or {}).get("stages", {})
    persons = row.persons or 1
    return {
        "det_pre": st.get("preprocess", 0.0), "det_infer": st.get("inference", 0.0),
        "det_post": st.get("postprocess", 0.0), "crop": st.get("crop", 0.0),
        "pose_pre": st.get("keypoint_preprocess", 0.0) * persons,
        "pose_infer": st.get("keypoint_inference", 0.0) * persons,
        "pose_post": st.get("keypoint_postprocess", 0.0) * persons,
        "total": st.get("total", row.avg_ms or 0.0),
    }


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def pipeline_cells(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> list[dict[str, Any]]:
    """Give one dict per pipeline x device x power mode x threads x persons: mean stages, total statistics, mode."""
    plan = RunPlan.of(plan)
    devices = plan.devices
    threads = sorted(set(plan.threads))
    modes = sorted(set(plan.power_modes)) or [0]
    ok = [c for c in cases if c.status == "ok" and c.avg_ms is not None]
    cells: list[dict[str, Any]] = []
    for name, p in plan.pipelines.items():
        for fp, dev in devices.items():
            composed = (dev.pipeline_mode or "composed") == "composed"
            for mode in modes:
                for t in threads:
                    for n in p.persons:
                        base = {"pipeline": name, "device": fp, "label": plan.device_label(fp), "threads": t,
                                "power_mode": mode, "persons": n}
                        if composed:
                            cells.append({**base, **_composed(ok, p.det, p.pose, fp, mode, t, n)})
                            continue
                        rows = [c for c in ok if c.pipeline == name and c.device_fp == fp and c.power_mode == mode
                                and c.threads == t and c.persons == n]
                        stats = cell_stats(rows)
                        stages = {k: _mean([stages_of(r)[k] for r in rows]) for k in STAGES}
                        failed = any(c.status == "failed" and c.pipeline == name and c.device_fp == fp
                                     and c.threads == t and c.persons == n for c in cases)
                        cells.append({**base, **stats, "stages_ms": stages, "total_ms": stats["mean_ms"],
                                      "mode": dev.pipeline_mode or "runner",
                                      "error": "failed" if failed and not rows else None})
    return cells


def _composed(ok: Sequence[CaseRow], det: str, pose: str, fp: str, mode: int, threads: int, n: int) -> dict[str, Any]:
    def single(model: str) -> float | None:
        return _mean([float(c.avg_ms) for c in ok if c.pipeline is None and c.model == model and c.device_fp == fp
                      and c.power_mode == mode and c.threads == threads and c.avg_ms is not None])

    d, k = single(det), single(pose)
    stages: dict[str, float | None] = {s: None for s in STAGES}
    stages["det_infer"] = d
    stages["pose_infer"] = k * n if k is not None else None
    total = d + n * k if d is not None and k is not None else None
    return {"stages_ms": stages, "total_ms": total, "mean_ms": total, "std_ms": None, "cv": None,
            "rounds": 0, "flags": ["composed"], "mode": "composed", "error": None}


def pipeline_table(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> Table | None:
    """Give the pipeline table of a run, or None when it has no pipelines."""
    cells = pipeline_cells(plan, cases)
    if not cells:
        return None
    several = len({c["power_mode"] for c in cells}) > 1
    rows: list[tuple[str, ...]] = []
    for c in cells:
        st = c["stages_ms"]
        total = c["total_ms"]
        if total is None:
            text = c.get("error") or "-"
        elif c["mode"] == "composed":
            text = f"{total:.2f} ms"
        else:
            text = latency_text(total, c["std_ms"] or 0.0, c["rounds"])
        threads = threads_label(c["threads"]) + (f", power_mode {c['power_mode']}" if several else "")
        rows.append((c["pipeline"], c["label"], threads, str(c["persons"]),
                     *("-" if st[s] is None else f"{st[s]:.2f}" for s in STAGES), text, c["mode"]))
    notes = ("Stages in ms per image; pose stages summed over the persons.",
             "composed = det + persons x pose from the single-model cases (inference only), on phones "
             "without a pipeline runner (--pipeline-runner PaddleDetection lite main).")
    return Table("Detector + pose pipeline", HEADER, tuple(rows), cells, notes)
