"""The complexity table of a host run, in MMPose's layout: size, FLOPs, params, FPS mean +- std.

FPS is iterations per second whatever the batch (MMPose's definition), mean +- std over every
timed iteration of the cell; one column per backend and batch, "(FPS)" at batch 1 and
"(FPS, bs=N)" above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.backends.registry import BACKENDS
from kpmobile.records import PlanDevice, PlanModel, RunPlan
from kpmobile.report.server import DIVERGED, backend_label, cell, model_label
from kpmobile.report.table import Table
from kpmobile.store import CaseRow


def input_size(input_shape: Sequence[int]) -> str:
    """Give MMPose's "Input size" of an NCHW shape: "(3, 192, 256)" is (C, W, H) for 256x192."""
    if len(input_shape) != 4:
        return str(tuple(int(d) for d in input_shape[1:]))
    _, c, h, w = (int(d) for d in input_shape)
    return f"({c}, {w}, {h})"


def format_gflops(flops: float | None) -> str:
    """Give multiply-adds in G as MMPose writes them ("7.7", "1.42"), with 3 digits below 1 G ("0.0802")."""
    if flops is None:
        return "-"
    g = float(flops) / 1e9
    return f"{g:.2f}".rstrip("0").rstrip(".") if g >= 1 else f"{g:.3g}"


def format_params(params: float | None) -> str:
    """Give a parameter count in millions, 2 decimals ("28.54")."""
    return "-" if params is None else f"{float(params) / 1e6:.2f}"


def format_fps(mean: float | None, std: float | None) -> str:
    """Give "22.73 ± 1.12"."""
    if mean is None:
        return "-"
    return f"{mean:.2f} ± {(std or 0.0):.2f}"


def fps_header(backend: str, batch: int, threads: int | None = None) -> str:
    """Give a FPS column's header: "CPU + MKLDNN (FPS)", "CPU + MKLDNN (FPS, bs=10)"."""
    label = backend_label(backend) + (f" {threads}T" if threads is not None else "")
    return f"{label} (FPS)" if batch == 1 else f"{label} (FPS, bs={batch})"


def complexity_table(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> Table:
    """Give the MMPose-style table: Model, Input size, FLOPs (GFLOPs), Params (M), FPS per backend x batch.

    FLOPs and params come from the run's plan (kpmobile.zoo.complexity.model_info at batch 1,
    stored when the sweep started): params are the trainable ones, as MMPose and
    PaddleDetection publish them; FLOPs are multiply-adds.
    """
    plan = RunPlan.of(plan)
    models = list(plan.models) or sorted({c.model for c in cases})
    run_backends = list(plan.backends) or sorted({c.backend for c in cases})
    backends = [b for b in BACKENDS if b in run_backends] + [b for b in run_backends if b not in BACKENDS]
    batches = sorted(set(plan.batches) | {c.batch for c in cases}) or [1]
    threads = sorted(set(plan.threads) | {c.threads for c in cases}) or [1]
    show_threads = len(threads) > 1
    columns = [(b, n, t) for b in backends for t in threads for n in batches]
    header = ("Model", "Input size", "FLOPs (GFLOPs)", "Params (M)",
              *(fps_header(b, n, t if show_threads else None) for b, n, t in columns))
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    for model in models:
        meta = plan.models.get(model, PlanModel())
        info = meta.complexity or {}
        params = info.get("trainable_params", info.get("params"))
        row = [model_label(plan, model), input_size(meta.input_shape),
               format_gflops(info.get("flops")), format_params(params)]
        shape = list(meta.input_shape) if model in plan.models else None
        entry: dict[str, Any] = {"model": model, "input_shape": shape, "flops": info.get("flops"),
                                 "params": info.get("params"), "trainable_params": info.get("trainable_params"),
                                 "complexity_error": info.get("error"), "published": dict(meta.published),
                                 "fps": []}
        for backend, batch, t in columns:
            c = cell(cases, model, backend, batch, t)
            text = format_fps(c.fps_mean, c.fps_std) if c.status == "ok" else ("failed" if c.status == "failed"
                                                                               else "-")
            row.append(text + (f" {DIVERGED}" if c.diverged else ""))
            entry["fps"].append({"backend": backend, "batch": batch, "threads": t, **c.to_json()})
        rows.append(tuple(row))
        data.append(entry)
    notes = ["FPS: iterations per second whatever the batch, mean ± std over the timed iterations (MMPose).",
             "FLOPs are multiply-adds (paddle.flops); Params are trainable parameters; Input size is (C, W, H)."]
    device = next(iter(plan.devices.values()), PlanDevice())
    if device.label:
        notes.append(f"Measured on {device.label}.")
    missing = [model_label(plan, m) for m in models if (plan.models.get(m, PlanModel()).complexity or {}).get("error")]
    if missing:
        notes.append(f"No complexity figures for: {', '.join(missing)} (see the run's plan).")
    if any(f.get("diverged") for e in data for f in e["fps"]):
        notes.append(f"{DIVERGED} outputs diverge from the paddle-cpu reference (see `kpmobile report server`).")
    return Table("Model complexity and inference speed", header, tuple(rows), data, tuple(notes))
