"""Time per operator: the top slow kernels of each profiled cell, and a diff of two runs' tables.

The rows come from a profiling build's extra invocation per cell (store `op_profiles`), never from
the latency rounds: the profiler's own overhead makes its times a different measurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.records import KernelTime, RunPlan
from kpmobile.report.table import Table
from kpmobile.store.ops import OpProfileRow

_HEADER = ("#", "Operator", "Kernel", "Function", "Calls", "Avg ms", "Min ms", "Max ms", "Share")
_DIFF_HEADER = ("Operator", "Kernel", "Function", "A ms", "B ms", "Δ ms", "B/A", "A share", "B share")


def cell_id(plan: RunPlan | Mapping[str, Any], p: OpProfileRow) -> str:
    """Give a cell's name: `LABEL/MODEL/Nt/pmM`, plus `/BACKEND/PRECISION/bN` where not arm/fp32/b1."""
    meta = RunPlan.of(plan).devices.get(p.device_fp)
    label = meta.label if meta is not None and meta.label else p.serial
    parts = [str(label), p.model, f"{p.threads}t", f"pm{p.power_mode}"]
    parts += [x for x, default in ((p.backend, "arm"), (p.precision, "fp32"), (f"b{p.batch}", "b1")) if x != default]
    return "/".join(parts)


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Tell whether a cell name matches any pattern: every `/`-part of a pattern is one of the name's parts."""
    parts = set(name.split("/"))
    return not patterns or any(set(p.split("/")) <= parts for p in patterns)


def _mflops(plan: RunPlan | Mapping[str, Any], model: str) -> float | None:
    meta = RunPlan.of(plan).models.get(model)
    return meta.flops / 1e6 if meta is not None and meta.flops else None


def _row(rank: int, k: KernelTime) -> tuple[str, ...]:
    return (str(rank), k.op_type, k.kernel, k.func, str(k.calls), f"{k.avg_ms:.3f}", f"{k.min_ms:.3f}",
            f"{k.max_ms:.3f}", f"{k.share:.1f} %")


def _other(rest: Sequence[KernelTime]) -> tuple[str, ...]:
    return ("", f"(other {len(rest)} kernels)", "", "", str(sum(k.calls for k in rest)),
            f"{sum(k.avg_ms for k in rest):.3f}", "", "", f"{sum(k.share for k in rest):.1f} %")


def ops_table(plan: RunPlan | Mapping[str, Any], p: OpProfileRow, top: int = 10) -> Table:
    """Give one cell's top `top` kernels by average time, plus one row for the rest (shares total 100 %)."""
    name = cell_id(plan, p)
    shown, rest = p.kernels[:top], p.kernels[top:]
    rows = [_row(i + 1, k) for i, k in enumerate(shown)] + ([_other(rest)] if rest else [])
    total = sum(k.avg_ms for k in p.kernels)
    mflops = _mflops(plan, p.model)
    notes = [f"source: {p.source or 'profiler'}; {p.warmup} warm-up + {p.repeats} runs of the profiling runner",
             f"kernels sum to {total:.3f} ms per inference; the profiling build's own avg {_ms(p.avg_ms)}"
             " (profiler overhead included: not a latency figure)"]
    notes.append(f"model: {mflops:.1f} MFLOPs (multiply-adds); top kernel {shown[0].share:.1f} % of the time"
                 if mflops and shown else "model FLOPs: unknown")
    data = {"cell": name, "model": p.model, "device": p.device_fp, "serial": p.serial, "threads": p.threads,
            "power_mode": p.power_mode, "backend": p.backend, "precision": p.precision, "batch": p.batch,
            "status": p.status, "error": p.error, "source": p.source, "profiled_avg_ms": p.avg_ms,
            "kernels_ms": total, "mflops": mflops, "kernels": [k.to_json() for k in p.kernels]}
    if p.status != "ok":
        return Table(f"Operators: {name}", _HEADER, (), [data], (f"failed: {p.error}",))
    return Table(f"Operators: {name}", _HEADER, tuple(rows), [data], tuple(notes))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def ops_tables(plan: RunPlan | Mapping[str, Any], profiles: Sequence[OpProfileRow], cells: Sequence[str] = (),
               top: int = 10) -> list[Table]:
    """Give the top-kernels table of every profiled cell whose name matches `cells` (all when empty)."""
    return [ops_table(plan, p, top) for p in _latest(plan, profiles) if matches(cell_id(plan, p), cells)]


def _latest(plan: RunPlan | Mapping[str, Any], profiles: Sequence[OpProfileRow]) -> list[OpProfileRow]:
    """Give one profile per cell: its last stored one (a resumed run may have profiled a cell twice)."""
    by_cell: dict[str, OpProfileRow] = {}
    for p in profiles:
        by_cell[cell_id(plan, p)] = p
    return list(by_cell.values())


def _ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}x" if a > 0 else "-"


def diff_table(name: str, a: OpProfileRow, b: OpProfileRow, top: int = 10) -> Table:
    """Give the kernels of one cell in runs A and B, largest absolute change first."""
    ka = {(k.op_type, k.kernel, k.func): k for k in a.kernels}
    kb = {(k.op_type, k.kernel, k.func): k for k in b.kernels}
    keys = sorted(set(ka) | set(kb), key=lambda key: -abs(_avg(kb.get(key)) - _avg(ka.get(key))))
    rows, data = [], []
    for key in keys[:top]:
        x, y = ka.get(key), kb.get(key)
        rows.append((*key, _num(x, "avg_ms"), _num(y, "avg_ms"), f"{_avg(y) - _avg(x):+.3f}",
                     _ratio(_avg(x), _avg(y)), _num(x, "share", " %", 1), _num(y, "share", " %", 1)))
        data.append({"op_type": key[0], "kernel": key[1], "func": key[2], "a_ms": x and x.avg_ms,
                     "b_ms": y and y.avg_ms, "a_share": x and x.share, "b_share": y and y.share})
    ta, tb = (sum(k.avg_ms for k in p.kernels) for p in (a, b))
    notes = (f"total: A {ta:.3f} ms, B {tb:.3f} ms ({_ratio(ta, tb)}); {len(keys)} kernels, top {min(top, len(keys))}"
             " by |Δ| shown; '-' = kernel absent from that run",)
    return Table(f"Operators diff: {name}", _DIFF_HEADER, tuple(rows), [{"cell": name, "kernels": data}], notes)


def _avg(k: KernelTime | None) -> float:
    return k.avg_ms if k else 0.0


def _num(k: KernelTime | None, field: str, unit: str = "", digits: int = 3) -> str:
    return "-" if k is None else f"{getattr(k, field):.{digits}f}{unit}"


def diff_tables(plan_a: RunPlan | Mapping[str, Any], a: Sequence[OpProfileRow], plan_b: RunPlan | Mapping[str, Any],
                b: Sequence[OpProfileRow], cells: Sequence[str] = (), top: int = 10) -> tuple[list[Table], list[str]]:
    """Give a diff table per cell profiled ok in both runs, and the names of cells only one run has."""
    ok_a = {cell_id(plan_a, p): p for p in _latest(plan_a, a) if p.status == "ok"}
    ok_b = {cell_id(plan_b, p): p for p in _latest(plan_b, b) if p.status == "ok"}
    names = [n for n in ok_a if n in ok_b and matches(n, cells)]
    alone = sorted(n for n in set(ok_a) ^ set(ok_b) if matches(n, cells))
    return [diff_table(n, ok_a[n], ok_b[n], top) for n in names], alone
