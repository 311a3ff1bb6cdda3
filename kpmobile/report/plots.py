"""PNG plots of a run with matplotlib (Agg): the only module that imports matplotlib."""

from __future__ import annotations

import io
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpmobile.report.compare import cell_values, device_label, device_order
from kpmobile.report.mobile import threads_label
from kpmobile.stats import achieved_gflops
from kpmobile.store import CaseRow, RunRow

FIGSIZE = (8.0, 5.0)
DPI = 100


@dataclass(frozen=True)
class Plot:
    """One figure: a file name, a title, its PNG bytes, or None with a note saying why it was skipped."""

    name: str
    title: str
    png: bytes | None
    note: str = ""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "device"


def _display(run: RunRow, model: str) -> str:
    return run.plan.model_display(model)


def latency_vs_threads(run: RunRow, cases: Sequence[CaseRow], fp: str) -> Plot:
    """Give one device's latency against threads, a line per model, error bars = std over rounds."""
    label = device_label(run, fp)
    series: dict[str, list[tuple[int, float, float]]] = {}
    for (dev, s), values in sorted(cell_values(cases).items()):
        if dev != fp or s.pipeline:
            continue
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        name = _display(run, s.model) + ("" if s.batch == 1 else f" batch {s.batch}")
        if s.backend not in ("arm", "x86"):
            name += f" [{s.backend}]"
        series.setdefault(name, []).append((s.threads, statistics.fmean(values), std))
    title = f"Latency vs threads: {label}"
    name = f"latency-vs-threads-{_slug(label)}-{fp[:8]}.png"
    if not series:
        return Plot(name, title, None, f"no successful cases on {label}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    threads: set[int] = set()
    for model, points in series.items():
        points.sort()
        xs = [p[0] for p in points]
        threads.update(xs)
        ax.errorbar(xs, [p[1] for p in points], yerr=[p[2] for p in points], marker="o", capsize=4, label=model)
    ax.set_xticks(sorted(threads))
    ax.set_xlabel("threads")
    ax.set_ylabel("latency (ms, mean of rounds)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return Plot(name, title, _png(fig))


def pipeline_vs_persons(run: RunRow, cases: Sequence[CaseRow]) -> Plot:
    """Give pipeline latency against persons per frame, a line per device, pipeline and threads."""
    series: dict[str, list[tuple[int, float]]] = {}
    for (fp, s), values in sorted(cell_values(cases).items()):
        if not s.pipeline or not s.persons:
            continue
        key = f"{device_label(run, fp)} {s.pipeline} {threads_label(s.threads)}"
        series.setdefault(key, []).append((s.persons, statistics.fmean(values)))
    title = "Pipeline latency vs persons"
    if not series:
        return Plot("pipeline-vs-persons.png", title, None, "skipped: the run has no pipeline cases with persons set")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for key, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
    ax.set_xlabel("persons per frame")
    ax.set_ylabel("pipeline latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return Plot("pipeline-vs-persons.png", title, _png(fig))


def device_bars(run: RunRow, cases: Sequence[CaseRow]) -> Plot:
    """Give grouped bars: a group per model, a bar per device x threads (mean latency, std whiskers)."""
    cells = {k: v for k, v in cell_values(cases).items() if not k[1].pipeline}
    title = "Latency by device"
    if not cells:
        return Plot("latency-by-device.png", title, None, "no successful cases")
    models = list(dict.fromkeys(s.model for _, s in sorted(cells, key=lambda k: k[1])))
    columns = [(fp, t) for fp in device_order(run, cases) for t in sorted({s.threads for _, s in cells})
               if any(dev == fp and s.threads == t for dev, s in cells)]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    width = 0.8 / max(1, len(columns))
    for i, (fp, t) in enumerate(columns):
        means, stds = [], []
        for model in models:
            values = [v for (dev, s), vals in cells.items() if dev == fp and s.threads == t and s.model == model
                      and s.batch == 1 for v in vals]
            means.append(statistics.fmean(values) if values else 0.0)
            stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        xs = [j + (i - (len(columns) - 1) / 2) * width for j in range(len(models))]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=f"{device_label(run, fp)} ({threads_label(t)})")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels([_display(run, m) for m in models], fontsize="small")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return Plot("latency-by-device.png", title, _png(fig))


def roofline_points(run: RunRow, cases: Sequence[CaseRow],
                    flops: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """Give one point per device x model x threads: model GFLOPs and achieved GFLOP/s (no FLOPs, or
    emulated timings: no point)."""
    from kpmobile.report.scaling import emulated_devices

    emulated = emulated_devices(run, cases)
    points = []
    for (fp, s), values in sorted(cell_values(cases).items()):
        macs = flops.get(s.model)
        if s.pipeline or not macs or fp in emulated:
            continue
        mean = statistics.fmean(values)
        per_frame = float(macs) * s.batch
        points.append({"device": fp, "label": device_label(run, fp), "model": s.model, "threads": s.threads,
                       "gflops": 2 * per_frame / 1e9, "mean_ms": mean,
                       "achieved_gflops_s": achieved_gflops(per_frame, mean)})
    return points


def roofline(run: RunRow, cases: Sequence[CaseRow], flops: Mapping[str, float | None]) -> Plot:
    """Give the roofline scatter: achieved GFLOP/s against model GFLOPs, a marker per device x threads."""
    points = roofline_points(run, cases, flops)
    title = "Roofline: achieved GFLOP/s vs model FLOPs"
    if not points:
        from kpmobile.report.scaling import emulated_devices

        if emulated_devices(run, cases):
            return Plot("roofline.png", title, None,
                        "skipped: emulated (qemu) timings say nothing of a phone's compute")
        return Plot("roofline.png", title, None, "skipped: no model FLOPs known for the run's models")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(f"{p['label']} ({threads_label(p['threads'])})", []).append(p)
    for key, pts in groups.items():
        ax.scatter([p["gflops"] for p in pts], [p["achieved_gflops_s"] for p in pts], s=50, label=key)
        for p in pts:
            ax.annotate(_display(run, p["model"]), (p["gflops"], p["achieved_gflops_s"]), fontsize="x-small",
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("model GFLOPs per inference (2 x multiply-adds)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return Plot("roofline.png", title, _png(fig))


def run_plots(run: RunRow, cases: Sequence[CaseRow], flops: Mapping[str, float | None]) -> list[Plot]:
    """Give every plot of a run: latency vs threads per device, pipeline vs persons, device bars, roofline."""
    plots = [latency_vs_threads(run, cases, fp) for fp in device_order(run, cases)]
    plots += [pipeline_vs_persons(run, cases), device_bars(run, cases), roofline(run, cases, flops)]
    return plots


def write_plots(plots: Iterable[Plot], out_dir: Path) -> list[Path]:
    """Give the paths of the PNGs written to `out_dir` (skipped plots write nothing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plots:
        if plot.png is not None:
            path = out_dir / plot.name
            path.write_bytes(plot.png)
            written.append(path)
    return written


FlopsMeasure = Callable[[Sequence[str]], Mapping[str, float | None]]  # model names -> multiply-adds


def run_flops(run: RunRow, cases: Sequence[CaseRow], measure: FlopsMeasure | None = None) -> dict[str, float | None]:
    """Give each model's multiply-adds: the run's plan where the sweep stored them, else `measure(names)`
    where one is given (the CLI passes `kpmobile.zoo.complexity.models_flops`; report never builds models)."""
    names = sorted({c.model for c in cases if c.pipeline is None})
    plan_models = run.plan.models
    out: dict[str, float | None] = {}
    for name in names:
        stored = plan_models[name].flops if name in plan_models else None
        out[name] = float(stored) if stored else None
    missing = [n for n, v in out.items() if v is None]
    if measure is not None and missing:
        out.update(measure(missing))
    return out
