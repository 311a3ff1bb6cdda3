"""The mobile table: one row per model, a column per device x threads, values in ms."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.report.table import Table
from kpmobile.store import CaseRow


def threads_label(threads: int) -> str:
    """Give the seed's column suffix: '1-thread', '4-threads'."""
    return f"{threads}-thread" if threads == 1 else f"{threads}-threads"


def mobile_table(plan: Mapping[str, Any], cases: Sequence[CaseRow]) -> Table:
    """Give the mobile table of one run from its plan and stored cases (mean of rounds per cell)."""
    models = plan.get("models", {})
    devices = plan.get("devices", {})
    threads = sorted({int(t) for t in plan.get("threads", [])} | {c.threads for c in cases})
    ok = [c for c in cases if c.status == "ok" and c.avg_ms is not None and c.pipeline is None]
    failed = {(c.model, c.device_fp, c.threads): c.error for c in cases if c.status == "failed"}
    device_order = list(devices) or sorted({c.device_fp for c in cases})
    model_order = list(models) or sorted({c.model for c in cases})
    header = ["Model"] + [
        f"{devices.get(fp, {}).get('label', fp)} ({threads_label(t)})" for fp in device_order for t in threads
    ]
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    for model in model_order:
        row = [str(models.get(model, {}).get("display", model))]
        for fp in device_order:
            for t in threads:
                vals = [c.avg_ms for c in ok if c.model == model and c.device_fp == fp and c.threads == t]
                values = [float(v) for v in vals if v is not None]
                if values:
                    mean = statistics.fmean(values)
                    row.append(f"{mean:.2f} ms")
                else:
                    mean = None
                    row.append("failed" if (model, fp, t) in failed else "-")
                data.append({
                    "model": model, "device": fp, "label": devices.get(fp, {}).get("label", fp),
                    "serial": devices.get(fp, {}).get("serial"), "threads": t,
                    "mean_ms": mean, "rounds": len(values), "values_ms": values,
                    "error": failed.get((model, fp, t)),
                })
        rows.append(tuple(row))
    notes = ("These tests above are based Paddle Lite deployment.", "The time only includes inference time.")
    return Table("Benchmark on Mobile", tuple(header), tuple(rows), data, notes)
