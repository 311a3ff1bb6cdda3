"""The server table of a host run: one row per model, a column per backend, values in ms.

The first table has the seed's layout (Model | CPU + MKLDNN | GPU | TensorRT (FP32) |
TensorRT (FP16)); the backends the seed has no column for (lite-x86, paddle-cpu, ort-*) get a
second table when they were run. A backend that was not run (or was skipped) shows "-"; a cell
whose outputs diverged from the paddle-cpu reference is marked with "*".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kpmobile.backends.registry import BACKENDS
from kpmobile.errors import ConfigError
from kpmobile.records import PlanDevice, RunPlan
from kpmobile.report.table import Table
from kpmobile.stats import summarize
from kpmobile.store import CaseRow, RunRow, Store

SEED_COLUMNS = ("CPU + MKLDNN", "GPU", "TensorRT (FP32)", "TensorRT (FP16)")
LABELS = {
    "lite-x86": "Lite x86",
    "paddle-cpu": "Paddle CPU",
    "ort-cpu": "ONNX Runtime CPU",
    "ort-cuda": "ONNX Runtime CUDA",
    "ort-trt": "ONNX Runtime TensorRT",
    **{name: info.column for name, info in BACKENDS.items() if info.column},
}
DIVERGED = "*"


def backend_label(backend: str) -> str:
    """Give a backend's column label: the seed's name where it has one ("CPU + MKLDNN")."""
    return LABELS.get(backend, backend)


def model_label(plan: RunPlan | Mapping[str, Any], model: str) -> str:
    """Give a model's row label without the mobile table's " (pose)" / " (det)" suffix."""
    display = RunPlan.of(plan).model_display(model)
    for suffix in (" (pose)", " (det)"):
        display = display.removesuffix(suffix)
    return display


def format_ms(value: float) -> str:
    """Give a latency as the seed writes it: "134.5 ms", "8.60 ms"."""
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


@dataclass(frozen=True)
class Cell:
    """The cases of one model x backend x batch x threads, summarised."""

    status: str  # "ok" | "failed" | "skipped" | "missing"
    mean_ms: float | None = None
    fps_mean: float | None = None
    fps_std: float | None = None
    rounds: int = 0
    iterations: int = 0
    diverged: bool = False
    check: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Give the cell as plain JSON types."""
        return dict(self.__dict__)


def cell(cases: Sequence[CaseRow], model: str, backend: str, batch: int, threads: int) -> Cell:
    """Give the summary of one cell: mean of round latencies, FPS mean +- std over all iterations."""
    mine = [c for c in cases if c.model == model and c.backend == backend and c.batch == batch
            and c.threads == threads]
    ok = [c for c in mine if c.status == "ok" and c.avg_ms is not None]
    if not ok:
        bad = next((c for c in mine if c.status == "failed"), None) or next(iter(mine), None)
        if bad is None:
            return Cell("missing")
        return Cell(bad.status, error=bad.error)
    latency = summarize([float(c.avg_ms) for c in ok if c.avg_ms is not None])
    times = [float(t) for c in ok for t in (c.record or {}).get("times_ms", ()) if float(t) > 0]
    fps = summarize([1000.0 / t for t in times]) if times else None
    checks = [check for c in ok if (check := c.case_extra.check) is not None]
    worst = next((ch for ch in checks if ch.ok is False), checks[0] if checks else None)
    return Cell("ok", mean_ms=latency.mean, fps_mean=fps.mean if fps else None, fps_std=fps.std if fps else None,
                rounds=len(ok), iterations=len(times), diverged=any(ch.ok is False for ch in checks),
                check=worst.to_json() if worst is not None else None)


def _pick(values: Sequence[int], preferred: int) -> int:
    return preferred if preferred in values else min(values)


def _run_axes(plan: RunPlan, cases: Sequence[CaseRow]) -> tuple[list[str], list[str], list[int], list[int]]:
    models = list(plan.models) or sorted({c.model for c in cases})
    backends = list(plan.backends) or sorted({c.backend for c in cases})
    batches = sorted(set(plan.batches) | {c.batch for c in cases}) or [1]
    threads = sorted(set(plan.threads) | {c.threads for c in cases}) or [1]
    return models, backends, batches, threads


def _latency_text(c: Cell) -> str:
    if c.status == "ok" and c.mean_ms is not None:
        return format_ms(c.mean_ms) + (f" {DIVERGED}" if c.diverged else "")
    return "failed" if c.status == "failed" else "-"


def _skip_notes(cases: Sequence[CaseRow], backends: Sequence[str], batch: int, threads: int) -> list[str]:
    seen: dict[tuple[str, str], int] = {}
    for c in cases:
        if c.status == "skipped" and c.backend in backends and c.batch == batch and c.threads == threads:
            key = (c.backend, str(c.error))
            seen[key] = seen.get(key, 0) + 1
    return [f"{backend_label(b)} ({b}) not run: {reason}" for (b, reason) in seen]


def _backend_table(title: str, plan: RunPlan, cases: Sequence[CaseRow], columns: Sequence[str],
                   column_backend: Mapping[str, str | None], batch: int, threads: int,
                   notes: Sequence[str]) -> Table:
    models, _, _, _ = _run_axes(plan, cases)
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    for model in models:
        row = [model_label(plan, model)]
        for column in columns:
            backend = column_backend.get(column)
            c = cell(cases, model, backend, batch, threads) if backend else Cell("missing")
            row.append(_latency_text(c))
            data.append({"model": model, "column": column, "backend": backend, "batch": batch, "threads": threads,
                         **c.to_json()})
        rows.append(tuple(row))
    run_backends = [b for b in column_backend.values() if b]
    all_notes = list(notes) + _skip_notes(cases, run_backends, batch, threads)
    if any(d["diverged"] for d in data):
        all_notes.append(f"{DIVERGED} outputs diverge from the {plan.reference or 'paddle-cpu'} reference "
                         "beyond the backend's tolerance (details with --format json)")
    return Table(title, ("Model", *columns), tuple(rows), data, tuple(all_notes))


def _host_notes(plan: RunPlan, batch: int, threads: int) -> list[str]:
    device = next(iter(plan.devices.values()), PlanDevice())
    label = device.label or device.model or "this host"
    if device.cpus and device.load_avg is not None:
        label += f" ({device.cpus} CPUs, load average {device.load_avg} at the start)"
    return [f"Measured on {label} with kpmobile's backend workers (one process per case).",
            f"Batch size {batch}; {threads} CPU thread(s); the time only includes inference time "
            "(one run plus copying its outputs to host memory), mean over iterations."]


def server_tables(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> list[Table]:
    """Give the server table in the seed's layout and, when other backends ran, a second table of them.

    Cells are the latency at batch 1 (the smallest batch when 1 was not run) and 1 thread (the
    fewest threads run), in ms: the mean over rounds of each case's mean per-iteration time.
    """
    plan = RunPlan.of(plan)
    _, backends, batches, threads_run = _run_axes(plan, cases)
    batch, threads = _pick(batches, 1), _pick(threads_run, 1)
    notes = _host_notes(plan, batch, threads)
    by_column = {info.column: name for name, info in BACKENDS.items() if info.column and name in backends}
    seed = _backend_table("Benchmark on Server", plan, cases, SEED_COLUMNS,
                          {col: by_column.get(col) for col in SEED_COLUMNS}, batch, threads, notes)
    others = [b for b in BACKENDS if b in backends and not BACKENDS[b].column]
    if not others:
        return [seed]
    extra = _backend_table("Benchmark on Server: other host backends", plan, cases,
                           [backend_label(b) for b in others], {backend_label(b): b for b in others},
                           batch, threads, notes)
    return [seed, extra]


def is_host_run(run: RunRow) -> bool:
    """Tell whether a stored run is a host sweep (its plan says kind "host")."""
    return run.plan.is_host


def pick_host_run(runs: Sequence[RunRow], run_id: str | None = None) -> RunRow | None:
    """Give the run `run_id` when given, else the latest host run, or None when there is none."""
    if run_id is not None:
        return next((r for r in runs if r.id == run_id), None)
    hosts = [r for r in runs if is_host_run(r)]
    return max(hosts, key=lambda r: r.started) if hosts else None


def host_run(store: Store, run_id: str | None = None) -> RunRow:
    """Give the stored host run `run_id` (default: the latest host run), or raise ConfigError naming the fix."""
    if run_id is not None:
        run = store.run(run_id)
        if not is_host_run(run):
            raise ConfigError(f"run {run_id} is a phone run, not a host run",
                              "print it with `kpmobile report mobile`, or pass the id of a `--device host` run")
        return run
    latest = pick_host_run(store.runs())
    if latest is None:
        raise ConfigError(f"the store {store.path} holds no host run",
                          "run `kpmobile bench --device host --backend paddle-mkldnn` first")
    return latest
