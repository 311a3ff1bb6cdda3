"""The mobile table: one row per model, a column per device x threads, values in ms; and its
roofline companion (achieved GFLOP/s beside each latency).

A cell is R rounds (separate runner invocations) of one setting: it shows the mean of the
rounds' averages, "mean ± std ms" when there is more than one round ("ms (1 round)" otherwise),
p50 and p90 of every timed iteration where the runner printed them (kpmobile's own runners), and a
``*`` when its CV is over 5 %, a round was flagged throttled, core-mismatch or outputs-diverge,
or its rounds trend up (``trend-up``: a phone heating and throttling over the sweep).
A column whose runner did not apply --threads (the x86 runner) gets a footnote. Its JSON gives
mean_ms, std_ms, median_ms, min_ms, cv, rounds, p50_ms, p90_ms, samples ("iterations" or
"rounds": what p50/p90 are over), starred and star_reasons, threads_applied, and flags: the
statistics' (``cv>5%``, ``trend-up``) and the conditions' of every round (``throttled``,
``core-mismatch``, ``hot-start``, ``outputs-diverge``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.records import RunPlan
from kpmobile.report.energy import case_energy, energy_cell
from kpmobile.report.table import Table
from kpmobile.stats import CV_LIMIT, achieved_gflops, percentile, summarize
from kpmobile.store import CaseRow

NOTES = ("These tests above are based Paddle Lite deployment.", "The time only includes inference time.")
EMULATED = "(emulated)"
EMULATED_NOTE = ("emulated: the phone runs under qemu (it says ro.kernel.qemu=1); these times are emulation "
                 "times on the host, not phone timings")
STAR_FLAGS = ("throttled", "core-mismatch", "outputs-diverge", "trend-up")  # flags that earn a cell its *
THREADS_NOTE = ("[1] threads not applied: the runner's log says it ignored --threads (the x86 MobileConfig has"
                " no set_threads), so columns that differ only in threads measure the same thing.")


def threads_label(threads: int) -> str:
    """Give the seed's column suffix: '1-thread', '4-threads'."""
    return f"{threads}-thread" if threads == 1 else f"{threads}-threads"


def latency_text(mean: float, std: float, rounds: int) -> str:
    """Give a cell's text: "12.34 ms", or "12.34 ± 0.56 ms" over several rounds."""
    return f"{mean:.2f} ± {std:.2f} ms" if rounds > 1 else f"{mean:.2f} ms"


def cell_stats(rows: Sequence[CaseRow]) -> dict[str, Any]:
    """Give the statistics and flags of one cell's stored rounds (ok rows with a latency)."""
    ordered = sorted(rows, key=lambda r: r.round)
    values = [float(r.avg_ms) for r in ordered if r.avg_ms is not None]
    flags: list[str] = []
    out: dict[str, Any] = {"rounds": len(values), "values_ms": values, "mean_ms": None, "std_ms": None,
                           "median_ms": None, "min_ms": None, "cv": None}
    if values:
        s = summarize(values)
        out.update(mean_ms=s.mean, std_ms=s.std, median_ms=s.median, min_ms=s.min, max_ms=s.max, cv=s.cv)
        flags += s.flags
    for r in ordered:
        for flag in r.case_extra.flags:
            if flag not in flags:
                flags.append(flag)
    out["flags"] = flags
    out["emulated"] = any(r.case_extra.emulated for r in ordered)
    out.update(memory_of(ordered))
    out.update(_percentiles(ordered, values))
    reasons = [f"cv>{CV_LIMIT:.0%}"] if out["cv"] is not None and out["cv"] > CV_LIMIT else []
    reasons += [f for f in flags if f in STAR_FLAGS]
    out.update(starred=bool(reasons), star_reasons=reasons, threads_applied=threads_applied(ordered))
    return out


def memory_of(rows: Sequence[CaseRow]) -> dict[str, Any]:
    """Give a cell's init and peak MB (from its memory-profile run) and what measured them; None when not measured."""
    for r in rows:
        memory = r.case_extra.memory
        if memory is not None and memory.peak_mb is not None:
            return {"init_mb": memory.init_mb, "peak_mb": memory.peak_mb, "memory_source": memory.source}
    return {"init_mb": None, "peak_mb": None, "memory_source": None}


def is_emulated(plan: RunPlan, fp: str, rows: Sequence[CaseRow] = ()) -> bool:
    """Tell whether a device's timings come from emulation (the phone says it runs under qemu)."""
    device = plan.devices.get(fp)
    return (device is not None and device.emulated) or any(r.case_extra.emulated for r in rows)



def _percentiles(rows: Sequence[CaseRow], values: Sequence[float]) -> dict[str, Any]:
    """Give p50/p90 over every timed iteration where each round has them, else over the round values."""
    iterations = [v for r in rows for v in r.samples_ms] if rows and all(r.samples_ms for r in rows) else []
    pool = iterations or list(values)
    if not pool:
        return {"p50_ms": None, "p90_ms": None, "samples": None, "n_samples": 0}
    return {"p50_ms": percentile(pool, 50), "p90_ms": percentile(pool, 90),
            "samples": "iterations" if iterations else "rounds", "n_samples": len(pool)}


def threads_applied(rows: Sequence[CaseRow]) -> bool | None:
    """Give False when a round's runner said it did not apply --threads, True when all said they did, else None."""
    said: list[bool] = []
    for r in rows:
        record = r.record or {}
        if isinstance(record.get("threads_applied"), bool):
            said.append(record["threads_applied"])
        elif any(str(n).lower().startswith("threads applied: no") for n in record.get("notes") or []):
            said.append(False)
    if any(not v for v in said):
        return False
    return True if said and len(said) == len(rows) else None


def cell_text(cell: Mapping[str, Any]) -> str:
    """Give a cell's text: "12.34 ± 0.56 ms (p50 12.30, p90 13.01) *", "12.34 ms (1 round)", ..."""
    text = latency_text(cell["mean_ms"], cell["std_ms"], cell["rounds"])
    if cell["rounds"] == 1:
        text += " (1 round)"
    if cell.get("samples") == "iterations":
        text += f" (p50 {cell['p50_ms']:.2f}, p90 {cell['p90_ms']:.2f})"
    return text + (" *" if cell.get("starred") else "")


def _columns(plan: RunPlan, cases: Sequence[CaseRow]) -> list[tuple[str, int, int]]:
    threads = sorted(set(plan.threads) | {c.threads for c in cases})
    modes = sorted(set(plan.power_modes) | {c.power_mode for c in cases}) or [0]
    device_order = list(plan.devices) or sorted({c.device_fp for c in cases})
    return [(fp, m, t) for fp in device_order for m in modes for t in threads]


def _column_label(plan: RunPlan, fp: str, mode: int, threads: int, several_modes: bool) -> str:
    label = plan.device_label(fp)
    suffix = threads_label(threads) + (f", power_mode {mode}" if several_modes else "")
    return f"{label} ({suffix})"


def mobile_table(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> Table:
    """Give the mobile table of one run from its plan and stored cases (rounds summarised per cell)."""
    plan = RunPlan.of(plan)
    models, devices = plan.models, plan.devices
    singles = [c for c in cases if c.pipeline is None]
    columns = _columns(plan, singles)
    several = len({m for _, m, _ in columns}) > 1
    ok = [c for c in singles if c.status == "ok" and c.avg_ms is not None]
    failed = {(c.model, c.device_fp, c.power_mode, c.threads): c.error for c in singles if c.status == "failed"}
    model_order = list(models) or sorted({c.model for c in singles})
    header = ["Model"] + [_column_label(plan, fp, m, t, several) for fp, m, t in columns]
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    flagged: list[str] = []
    for model in model_order:
        display = plan.model_display(model)
        flops = models[model].flops if model in models else None
        row = [display]
        for fp, mode, t in columns:
            mine = [c for c in ok if c.model == model and c.device_fp == fp and c.power_mode == mode and c.threads == t]
            cell = cell_stats(mine)
            key = (model, fp, mode, t)
            emulated = is_emulated(plan, fp, mine)
            if cell["mean_ms"] is not None:
                row.append(cell_text(cell) + (f" {EMULATED}" if emulated else ""))
            else:
                row.append("failed" if key in failed else "-")
            dev = devices.get(fp)
            peak = dev.peak_gflops if dev is not None else None
            gflops = achieved_gflops(float(flops), cell["mean_ms"]) if flops and cell["mean_ms"] else None
            data.append({
                "model": model, "device": fp, "label": plan.device_label(fp),
                "serial": dev.text("serial") if dev is not None else None, "threads": t, "power_mode": mode,
                **cell, "emulated": emulated, "gflops": None if emulated else gflops, "peak_gflops": peak,
                "peak_share": gflops / peak if gflops and peak and not emulated else None,
                "error": None if cell["mean_ms"] is not None else failed.get(key),
                "energy": energy_cell([e for c in mine if (e := case_energy(c)) is not None]),
            })
            if cell["flags"]:
                flagged.append(f"{display} on {header[len(row) - 1]}: {', '.join(cell['flags'])}")
        rows.append(tuple(row))
    header, notes = _footnotes(header, columns, data)
    notes += tuple(f"flag: {f}" for f in flagged)
    if any(d["emulated"] for d in data):
        notes += (EMULATED_NOTE,)
    return Table("Benchmark on Mobile", tuple(header), tuple(rows), data, notes)


def _footnotes(header: list[str], columns: Sequence[tuple[str, int, int]],
               data: Sequence[Mapping[str, Any]]) -> tuple[list[str], tuple[str, ...]]:
    """Give the header with the threads footnote marks, and the table's notes: rounds, samples, star, threads."""
    marked = {(d["device"], d["power_mode"], d["threads"]) for d in data if d.get("threads_applied") is False}
    header = header[:1] + [f"{h} [1]" if col in marked else h for h, col in zip(header[1:], columns)]
    rounds = sorted({int(d["rounds"]) for d in data if d.get("rounds")})
    notes: tuple[str, ...] = NOTES
    if rounds:
        span = str(rounds[0]) if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]}"
        notes += (f"Cells: mean ± std of {span} round(s) per cell (each round one runner invocation); p50/p90 of"
                  f" every timed iteration where the runner printed them; * = CV over {CV_LIMIT:.0%} or flagged"
                  f" ({', '.join(STAR_FLAGS)}).",)
    return header, notes + ((THREADS_NOTE,) if marked else ())


def roofline_table(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> Table | None:
    """Give each cell's latency beside its achieved GFLOP/s (2 x multiply-adds / latency) and the
    share of the profile's peak where known; None when no model's FLOPs are known."""
    plan = RunPlan.of(plan)
    models = plan.models
    if not any(m.flops for m in models.values()):
        return None
    base = mobile_table(plan, cases)
    devices = plan.devices
    header = ["Model", "MFLOPs (MACs)"]
    for name in base.header[1:]:
        header += [name, "GFLOP/s"]
    rows: list[tuple[str, ...]] = []
    per_row = len(base.header) - 1
    for i, row in enumerate(base.rows):
        cells = base.data[i * per_row:(i + 1) * per_row]
        meta = models.get(cells[0]["model"]) if cells else None
        flops = meta.flops if meta is not None else None
        out = [row[0], f"{flops / 1e6:.1f}" if flops else "-"]
        for text, cell in zip(row[1:], cells):
            g = cell["gflops"]
            peak = cell["peak_gflops"]
            if cell.get("emulated"):
                out += [text, "- (emulated: no roofline)"]
                continue
            out += [text, "-" if g is None else (f"{g:.2f} ({g / peak:.0%} of {peak:g})" if peak else f"{g:.2f}")]
        rows.append(tuple(out))
    peaks = [f"{plan.device_label(fp)}: {d.peak_gflops:g} GFLOP/s" for fp, d in devices.items() if d.peak_gflops]
    notes: tuple[str, ...] = ("Achieved GFLOP/s = 2 x multiply-adds / mean latency.",
             "Peak (profile's peak_gflops): " + ("; ".join(peaks) if peaks else "unknown for these devices") + ".")
    if any(c.get("emulated") for c in base.data):
        notes += ("Emulated cells (qemu) give no achieved GFLOP/s: emulation says nothing of a phone's compute.",)
    return Table("Roofline: achieved GFLOP/s", tuple(header), tuple(rows), base.data, notes)


def memory_table(plan: RunPlan | Mapping[str, Any], cases: Sequence[CaseRow]) -> Table:
    """Give init / peak MB per model and device x threads, from the runs' memory-profile invocations."""
    base = mobile_table(plan, cases)
    per_row = len(base.header) - 1
    rows: list[tuple[str, ...]] = []
    sources: list[str] = []
    for i, row in enumerate(base.rows):
        cells = base.data[i * per_row:(i + 1) * per_row]
        out = [row[0]]
        for cell in cells:
            if cell["peak_mb"] is None:
                out.append("-")
                continue
            init = "?" if cell["init_mb"] is None else f"{cell['init_mb']:.1f}"
            out.append(f"{init} / {cell['peak_mb']:.1f} MB")
            if cell["memory_source"] and f"{cell['label']}: {cell['memory_source']}" not in sources:
                sources.append(f"{cell['label']}: {cell['memory_source']}")
        rows.append(tuple(out))
    notes = ("init / peak MB from one extra runner invocation per cell with --enable_memory_profile=true, "
             "kept apart from the latency rounds.",) + tuple(f"memory source: {s}" for s in sources)
    if not any(c["peak_mb"] is not None for c in base.data):
        notes += ("No memory was measured in this run: run `kpmobile bench --memory`.",)
    return Table("Memory on Mobile", base.header, tuple(rows), base.data, notes)
