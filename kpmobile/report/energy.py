"""Energy per inference: one row per cell (model x device x threads x power mode), from the battery
samples `bench --energy` stored with each round: mJ per inference, inferences per Wh, mean and idle W."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.records import Energy, RunPlan
from kpmobile.report.table import Table
from kpmobile.store import CaseRow

_HEADER = ("Model", "Device", "Threads", "mJ / inference", "Inferences / Wh", "Mean W", "Idle W", "Samples", "Flags")


def inferences_per_wh(energy_mj: float | None) -> float | None:
    """Give how many inferences one watt-hour pays for (1 Wh = 3.6e6 mJ)."""
    return 3.6e6 / energy_mj if energy_mj else None


def case_energy(case: CaseRow) -> Energy | None:
    """Give the energy record stored with a case, or None when it was not measured."""
    extra: Any = case.extra
    data = extra.get("energy") if isinstance(extra, Mapping) else getattr(extra, "energy", None)
    if data is None:
        return None
    return data if isinstance(data, Energy) else Energy.from_json(dict(data))


def energy_cell(rounds: Sequence[Energy]) -> dict[str, Any] | None:
    """Give a cell's energy over its rounds (means of the rounds with a figure), or None when none was measured."""
    if not rounds:
        return None
    figures = [e.energy_mj for e in rounds if e.energy_mj is not None]
    mean_w = [e.mean_w for e in rounds if e.mean_w is not None]
    idle_w = [e.idle_w for e in rounds if e.idle_w is not None]
    mj = statistics.fmean(figures) if figures else None
    flags = sorted({f for e in rounds for f in e.flags})
    notes = sorted({e.note for e in rounds if e.note})
    return {"mj_per_inference": mj, "inferences_per_wh": inferences_per_wh(mj),
            "mean_w": statistics.fmean(mean_w) if mean_w else None,
            "idle_w": statistics.fmean(idle_w) if idle_w else None,
            "samples": sum(e.samples for e in rounds), "idle_samples": sum(e.idle_samples for e in rounds),
            "rounds": len(figures), "flags": flags, "notes": notes,
            "units": next((e.units for e in rounds if e.units), None),
            "hint": next((e.hint for e in rounds if e.hint), None)}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def energy_table(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> Table:
    """Give the energy of every measured cell of a run (single models; ok rounds only)."""
    plan = RunPlan.of(plan)
    cells: dict[tuple[str, str, int, int], list[Energy]] = {}
    for c in cases:
        record = case_energy(c) if c.status == "ok" and c.pipeline is None else None
        if record is not None:
            cells.setdefault((c.model, c.device_fp, c.threads, c.power_mode), []).append(record)
    rows, data, notes = [], [], []
    for (model, fp, threads, mode), rounds in cells.items():
        cell = energy_cell(rounds)
        assert cell is not None
        label = plan.device_label(fp)
        display = plan.model_display(model)
        rows.append((display, str(label), f"{threads}" + (f" (pm {mode})" if mode else ""),
                     _fmt(cell["mj_per_inference"], ".2f"), _fmt(cell["inferences_per_wh"], ",.0f"),
                     _fmt(cell["mean_w"], ".3f"), _fmt(cell["idle_w"], ".3f"), str(cell["samples"]),
                     ", ".join(cell["flags"])))
        data.append({"model": model, "device": fp, "label": label, "threads": threads, "power_mode": mode, **cell})
        notes += [f"{display} on {label}: {n}" for n in cell["notes"]]
        if cell["hint"] and cell["hint"] not in notes:
            notes.append(f"charging: {cell['hint']}")
    notes.insert(0, "mJ / inference = (mean power during the run - idle baseline) x mean latency; "
                    "1 Wh = 3.6e6 mJ")
    return Table("Energy per inference", _HEADER, tuple(rows), data, tuple(dict.fromkeys(notes)))
