"""Thread scaling per device and model: speedup against the fewest threads, its interval, efficiency (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kpmobile.records import PlanModel
from kpmobile.report.compare import cell_values, device_label
from kpmobile.report.table import Table
from kpmobile.stats import bootstrap_ratio_ci
from kpmobile.store import CaseRow, RunRow


@dataclass(frozen=True)
class Scaling:
    """How one model on one device speeds up from `base_threads` to `threads`."""

    device: str  # fingerprint
    label: str
    model: str
    backend: str
    batch: int
    base_threads: int
    threads: int
    base_ms: float
    ms: float
    speedup: float  # mean(base) / mean(threads); > 1 means more threads help
    ci: tuple[float, float]  # bootstrap interval of the speedup over rounds
    efficiency: float  # speedup / (threads / base_threads)
    rounds: tuple[int, int]  # rounds behind base and threads
    warning: str | None

    def to_json(self) -> dict[str, Any]:
        """Give the row as plain JSON types."""
        return {
            "device": self.device, "label": self.label, "model": self.model, "backend": self.backend,
            "batch": self.batch, "base_threads": self.base_threads, "threads": self.threads,
            "base_ms": self.base_ms, "ms": self.ms, "speedup": self.speedup, "ci": list(self.ci),
            "efficiency": self.efficiency, "rounds": list(self.rounds), "warning": self.warning,
        }


def thread_scaling(run: RunRow, cases: Sequence[CaseRow]) -> list[Scaling]:
    """Give, per device and model, the speedup of each thread count over the fewest threads measured."""
    emulated = emulated_devices(run, cases)
    cells = {key: values for key, values in cell_values(cases).items() if key[0] not in emulated}
    not_applied = _threads_not_applied(cases)
    groups: dict[tuple[str, str, str, int, str, int], dict[int, list[float]]] = {}
    for (fp, s), values in cells.items():
        if s.pipeline:
            continue
        key = (fp, s.model, s.backend, s.batch, s.precision, s.power_mode)
        groups.setdefault(key, {})[s.threads] = values
    out: list[Scaling] = []
    for (fp, model, backend, batch, _prec, _pm), by_threads in sorted(groups.items()):
        if len(by_threads) < 2:
            continue
        base_t = min(by_threads)
        base = by_threads[base_t]
        for t in sorted(by_threads):
            if t == base_t:
                continue
            vals = by_threads[t]
            speedup = statistics.fmean(base) / statistics.fmean(vals)
            ci = bootstrap_ratio_ci(vals, base)  # mean(base) / mean(vals), resampled over rounds
            out.append(Scaling(fp, device_label(run, fp), model, backend, batch, base_t, t,
                               statistics.fmean(base), statistics.fmean(vals), speedup, ci,
                               speedup / (t / base_t), (len(base), len(vals)),
                               _warning(base_t, t, speedup, ci, (fp, model) not in not_applied)))
    return out


def _warning(base_t: int, t: int, speedup: float, ci: tuple[float, float], applied: bool) -> str | None:
    if not applied:
        return "the runner did not apply --threads (its log says so): no speedup is expected"
    if speedup >= 1:
        return None
    sure = "significantly " if ci[1] < 1 else ""
    return (f"{t} threads are {sure}slower than {base_t} (+{(1 / speedup - 1) * 100:.0f}% time): check that"
            " the cores are not busy or throttled, and the power mode binds big cores")


def emulated_devices(run: RunRow, cases: Sequence[CaseRow]) -> set[str]:
    """Give the fingerprints whose timings are emulated (qemu): no scaling conclusion is drawn from them."""
    out = {fp for fp, d in run.plan.devices.items() if d.emulated}
    return out | {c.device_fp for c in cases if c.case_extra.emulated}


def emulated_labels(run: RunRow, cases: Sequence[CaseRow]) -> list[str]:
    """Give the labels of the emulated devices of a run, for the scaling table's note."""
    return sorted(device_label(run, fp) for fp in emulated_devices(run, cases))


def _threads_not_applied(cases: Sequence[CaseRow]) -> set[tuple[str, str]]:
    out = set()
    for c in cases:
        record = c.record or {}
        applied = record.get("threads_applied")
        if applied is None:  # stored before RunRecord had the field: the runner's note says it
            notes = record.get("notes") or []
            applied = not any(str(n).lower().startswith("threads applied: no") for n in notes)
        if not applied:
            out.add((c.device_fp, c.model))
    return out


def scaling_table(rows: Sequence[Scaling], models: Mapping[str, Any] | None = None,
                  emulated: Sequence[str] = ()) -> Table:
    """Give the thread-scaling rows as a Table (speedup with its interval, efficiency, warning)."""
    header = ("Device", "Model", "Threads", "Latency (ms)", "Speedup", "95% CI", "Efficiency", "Warning")
    body = []
    for r in rows:
        display = PlanModel.display_in(models, r.model)
        body.append((
            r.label, display, f"{r.threads}T / {r.base_threads}T", f"{r.ms:.2f} / {r.base_ms:.2f}",
            f"{r.speedup:.2f}x", f"{r.ci[0]:.2f}-{r.ci[1]:.2f}", f"{r.efficiency:.0%}", r.warning or "",
        ))
    notes: tuple[str, ...] = (
        "Speedup = mean latency at the fewest threads / mean latency at more threads; the interval"
        " is a bootstrap over rounds; efficiency = speedup / thread ratio.",)
    if emulated:
        notes += (f"Left out, emulated (qemu): {', '.join(emulated)}: emulated timings say nothing of a phone's "
                  "thread scaling.",)
    if not rows:
        notes += ("No device and model was measured at two thread counts.",)
    return Table("Thread scaling", header, tuple(body), [r.to_json() for r in rows], notes)


__all__ = ["Scaling", "emulated_devices", "emulated_labels", "scaling_table", "thread_scaling"]
