"""Compare two runs cell by cell: ratio, significance on round values, verdict (pure)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.records import PlanModel
from kpmobile.report.mobile import threads_label
from kpmobile.report.table import Table
from kpmobile.stats import RoundVariance, effective_size, round_variance
from kpmobile.stats import compare as compare_values
from kpmobile.store import CaseRow, RunRow

DEFAULT_THRESHOLD = 0.05  # a change below 5 % is "same" even when significant
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True, order=True)
class Setting:
    """What makes a cell on one device: model x threads x backend x batch (x precision, pipeline, persons)."""

    model: str
    threads: int
    backend: str
    batch: int = 1
    precision: str = "fp32"
    power_mode: int = 0
    pipeline: str = ""
    persons: int = 0

    def label(self) -> str:
        """Give a short human label, e.g. 'pp-tinypose-128x96 4-threads' (+ backend, batch when not default)."""
        parts = [self.pipeline or self.model, threads_label(self.threads)]
        if self.backend not in ("arm", "x86"):
            parts.append(self.backend)
        if self.batch != 1:
            parts.append(f"batch {self.batch}")
        if self.precision != "fp32":
            parts.append(self.precision)
        if self.pipeline:
            parts.append(f"{self.persons} persons")
        return " ".join(parts)


def setting_of(case: CaseRow) -> Setting:
    """Give the setting (cell key without device) of a stored case."""
    return Setting(case.model, case.threads, case.backend, case.batch, case.precision, case.power_mode,
                   case.pipeline or "", case.persons or 0)


def cell_values(cases: Sequence[CaseRow]) -> dict[tuple[str, Setting], list[float]]:
    """Give each (device fingerprint, setting) cell's round values (avg_ms of ok cases, in round order)."""
    cells: dict[tuple[str, Setting], list[tuple[int, float]]] = {}
    for c in cases:
        if c.status != "ok" or c.avg_ms is None:
            continue
        cells.setdefault((c.device_fp, setting_of(c)), []).append((c.round, float(c.avg_ms)))
    return {k: [v for _, v in sorted(vals)] for k, vals in cells.items()}


@dataclass(frozen=True)
class CellSamples:
    """One cell's samples: its round values and, where the runner printed them, every timed iteration."""

    rounds: tuple[float, ...]  # avg_ms of each ok round, in round order
    per_round: tuple[tuple[float, ...], ...] = ()  # each round's per-iteration times; () unless every round has them

    @property
    def iterations(self) -> tuple[float, ...]:
        """Give the per-iteration times of all rounds, pooled (() where a round has none)."""
        return tuple(v for r in self.per_round for v in r)


def cell_samples(cases: Sequence[CaseRow]) -> dict[tuple[str, Setting], CellSamples]:
    """Give each (device fingerprint, setting) cell's samples (ok cases with a latency)."""
    cells: dict[tuple[str, Setting], list[CaseRow]] = {}
    for c in cases:
        if c.status == "ok" and c.avg_ms is not None:
            cells.setdefault((c.device_fp, setting_of(c)), []).append(c)
    out = {}
    for key, rows in cells.items():
        rows.sort(key=lambda r: r.round)
        every = all(r.samples_ms for r in rows)
        out[key] = CellSamples(tuple(float(r.avg_ms or 0) for r in rows),
                               tuple(tuple(r.samples_ms) for r in rows) if every else ())
    return out


def device_order(run: RunRow, cases: Sequence[CaseRow]) -> list[str]:
    """Give a run's device fingerprints in column order (the plan's, then first appearance)."""
    order = list(run.plan.devices)
    for c in cases:
        if c.device_fp not in order:
            order.append(c.device_fp)
    return order


def device_label(run: RunRow, fp: str) -> str:
    """Give a device's column label in a run (its plan label, else the fingerprint)."""
    return run.plan.device_label(fp)


@dataclass(frozen=True)
class CellComparison:
    """One cell of B against the same cell of A."""

    setting: Setting
    device_a: str | None  # fingerprint in run A (None: only in B)
    device_b: str | None
    label: str  # device column label
    values_a: tuple[float, ...]
    values_b: tuple[float, ...]
    mean_a: float | None
    mean_b: float | None
    ratio: float | None  # Hodges-Lehmann estimate of B / A; > 1 means B is slower
    p_value: float | None  # two-sided Mann-Whitney U; None when no test could pass (insufficient)
    ci: tuple[float, float] | None  # distribution-free interval of the ratio at 1 - alpha
    verdict: str  # "slower" | "faster" | "same" | "insufficient" | "only-a" | "only-b"
    forced: bool = False  # matched across different fingerprints because of --force
    need_rounds: int | None = None  # rounds a side needs before a verdict is possible ("insufficient")
    samples: str = "rounds"  # what was tested: "iterations" (pooled over rounds) or "rounds" (their avg_ms)
    n_samples: tuple[int, int] = (0, 0)  # samples tested in A and B
    design_effect: float = 1.0  # how much n_samples overstates the independent samples (iterations only)
    round_icc: float | None = None  # share of the iterations' variance between rounds (iterations only)

    @property
    def effective_n(self) -> tuple[int, int]:
        """Give the independent samples that n_samples are worth (n / design effect)."""
        return (effective_size(self.n_samples[0], self.design_effect),
                effective_size(self.n_samples[1], self.design_effect))

    @property
    def verdict_text(self) -> str:
        """Give the verdict as the table prints it, e.g. 'insufficient (need >= 4 rounds)'."""
        if self.verdict == "insufficient" and self.need_rounds:
            return f"insufficient (need >= {self.need_rounds} rounds)"
        return self.verdict

    @property
    def change_pct(self) -> float | None:
        """Give B's change against A in percent (positive = slower)."""
        return None if self.ratio is None else (self.ratio - 1) * 100

    def to_json(self) -> dict[str, Any]:
        """Give the cell as plain JSON types."""
        s = self.setting
        return {
            "model": s.model, "threads": s.threads, "backend": s.backend, "batch": s.batch,
            "precision": s.precision, "power_mode": s.power_mode, "pipeline": s.pipeline or None,
            "persons": s.persons or None, "device_a": self.device_a, "device_b": self.device_b,
            "label": self.label, "values_a_ms": list(self.values_a), "values_b_ms": list(self.values_b),
            "mean_a_ms": self.mean_a, "mean_b_ms": self.mean_b, "ratio": self.ratio,
            "change_pct": self.change_pct, "p_value": self.p_value, "ci": list(self.ci) if self.ci else None,
            "verdict": self.verdict, "need_rounds": self.need_rounds, "forced": self.forced,
            "samples": self.samples, "n_samples": list(self.n_samples), "design_effect": self.design_effect,
            "round_icc": self.round_icc, "effective_n": list(self.effective_n),
        }


@dataclass(frozen=True)
class RunComparison:
    """Every cell of run B against run A, and how the devices were matched."""

    run_a: str
    run_b: str
    cells: tuple[CellComparison, ...]
    pairs: tuple[tuple[str, str], ...]  # (fingerprint in A, fingerprint in B)
    forced: bool
    threshold: float
    notes: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Give the number of cells per verdict."""
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """Give the comparison as plain JSON types."""
        return {
            "run_a": self.run_a, "run_b": self.run_b, "forced": self.forced, "threshold": self.threshold,
            "pairs": [list(p) for p in self.pairs], "counts": self.counts(), "notes": list(self.notes),
            "cells": [c.to_json() for c in self.cells],
        }


def match_devices(run_a: RunRow, cases_a: Sequence[CaseRow], run_b: RunRow, cases_b: Sequence[CaseRow],
                  force: bool = False) -> tuple[list[tuple[str, str]], list[str]]:
    """Give the (A, B) device pairs to compare and notes; refuse differing fingerprints unless `force`.

    Devices are matched by fingerprint. Those left over on both sides are different phones in
    the same place: refused, or with `force` paired by column label, then by column position.
    """
    order_a, order_b = device_order(run_a, cases_a), device_order(run_b, cases_b)
    pairs = [(fp, fp) for fp in order_a if fp in order_b]
    left_a = [fp for fp in order_a if fp not in order_b]
    left_b = [fp for fp in order_b if fp not in order_a]
    notes: list[str] = []
    if left_a and left_b:
        if not force:
            a_txt = ", ".join(f"{device_label(run_a, fp)} [{fp}]" for fp in left_a)
            b_txt = ", ".join(f"{device_label(run_b, fp)} [{fp}]" for fp in left_b)
            raise ConfigError(
                f"device fingerprints differ: run {run_a.id} has {a_txt}, run {run_b.id} has {b_txt}",
                "different phones (or firmware) give different numbers; pass --force to compare them"
                " by column label and position anyway")
        by_label = {device_label(run_b, fp): fp for fp in left_b}
        for fp in list(left_a):
            other = by_label.get(device_label(run_a, fp))
            if other is not None and other in left_b:
                pairs.append((fp, other))
                left_a.remove(fp)
                left_b.remove(other)
        for fp, other in zip(list(left_a), list(left_b)):
            pairs.append((fp, other))
            left_a.remove(fp)
            left_b.remove(other)
        notes.append("--force: compared devices whose fingerprints differ")
    notes += [f"device {device_label(run_a, fp)} [{fp}] is only in run {run_a.id}" for fp in left_a]
    notes += [f"device {device_label(run_b, fp)} [{fp}] is only in run {run_b.id}" for fp in left_b]
    return pairs, notes


def compare_runs(run_a: RunRow, cases_a: Sequence[CaseRow], run_b: RunRow, cases_b: Sequence[CaseRow], *,
                 force: bool = False, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = DEFAULT_ALPHA) -> RunComparison:
    """Give run B compared with run A cell by cell (device x model x threads x backend x batch)."""
    pairs, notes = match_devices(run_a, cases_a, run_b, cases_b, force)
    vals_a, vals_b = cell_samples(cases_a), cell_samples(cases_b)
    none = CellSamples(())
    cells: list[CellComparison] = []
    paired_a = {a for a, _ in pairs}
    paired_b = {b for _, b in pairs}
    # How far rounds disagree is mostly the host's and the runner's, common to a run's cells: pooled over
    # every cell of both runs it is known from many rounds; a cell's own rounds can only add to it.
    rule = _Rule(threshold, alpha, round_variance(c.per_round for c in (*vals_a.values(), *vals_b.values())))
    for fp_a, fp_b in pairs:
        settings = sorted({s for fp, s in vals_a if fp == fp_a} | {s for fp, s in vals_b if fp == fp_b})
        for s in settings:
            cells.append(_cell(s, fp_a, fp_b, device_label(run_a, fp_a), vals_a.get((fp_a, s), none),
                               vals_b.get((fp_b, s), none), fp_a != fp_b, rule))
    for (fp, s), values in sorted(vals_a.items()):
        if fp not in paired_a:
            cells.append(_cell(s, fp, None, device_label(run_a, fp), values, none, False, rule))
    for (fp, s), values in sorted(vals_b.items()):
        if fp not in paired_b:
            cells.append(_cell(s, None, fp, device_label(run_b, fp), none, values, False, rule))
    return RunComparison(run_a.id, run_b.id, tuple(cells), tuple(pairs), force and any(a != b for a, b in pairs),
                         threshold, tuple(notes))


MIN_ROUNDS_POOLED = 2  # iterations of one round share its moment of load: a verdict needs them from 2 rounds


@dataclass(frozen=True)
class _Rule:
    threshold: float
    alpha: float
    spread: RoundVariance | None  # pooled over every cell of both runs


def _cell(s: Setting, fp_a: str | None, fp_b: str | None, label: str, a: CellSamples, b: CellSamples,
          forced: bool, rule: _Rule) -> CellComparison:
    mean_a = statistics.fmean(a.rounds) if a.rounds else None
    mean_b = statistics.fmean(b.rounds) if b.rounds else None
    head = (s, fp_a, fp_b, label, a.rounds, b.rounds, mean_a, mean_b)
    if not a.rounds or not b.rounds:
        return CellComparison(*head, None, None, None, "only-a" if a.rounds else "only-b", forced)
    if not (a.per_round and b.per_round):
        cmp = compare_values(a.rounds, b.rounds, threshold=rule.threshold, alpha=rule.alpha)
        return CellComparison(*head, cmp.ratio, cmp.p_value, cmp.ci, cmp.verdict, forced, cmp.need, "rounds",
                              cmp.n)
    xa, xb = a.iterations, b.iterations
    per_round = (len(xa) + len(xb)) / (len(a.rounds) + len(b.rounds))
    known = [v for v in (rule.spread, round_variance((a.per_round, b.per_round))) if v is not None]
    spread = max(known, key=lambda v: v.icc) if known else None
    icc = spread.icc if spread else 0.0
    deff = spread.design_effect(per_round) if spread else 1.0
    cmp = compare_values(xa, xb, threshold=rule.threshold, alpha=rule.alpha, design_effect=deff)
    verdict, need = cmp.verdict, None
    if verdict == "insufficient" or min(len(a.rounds), len(b.rounds)) < MIN_ROUNDS_POOLED:
        # Rounds a side for enough effective samples: each round is worth per_round / deff of them.
        need = max(MIN_ROUNDS_POOLED, math.ceil((cmp.need or 0) * deff / per_round - 1e-9))
        verdict = "insufficient"
    p_value = cmp.p_value if verdict != "insufficient" else None
    return CellComparison(*head, cmp.ratio, p_value, cmp.ci, verdict, forced, need, "iterations", cmp.n, deff, icc)


def regressions(result: RunComparison, fail_above_pct: float) -> list[CellComparison]:
    """Give the cells significantly slower than A by more than `fail_above_pct` percent."""
    return [c for c in result.cells
            if c.verdict == "slower" and c.change_pct is not None and c.change_pct > fail_above_pct]


def insufficient(result: RunComparison) -> list[CellComparison]:
    """Give the cells in both runs whose samples are too few for any verdict."""
    return [c for c in result.cells if c.verdict == "insufficient"]


VERDICT_HELP = (
    "Samples: every timed iteration where the runner printed them (from 2 rounds a side), else the rounds."
    " Iterations of one round are not independent: where rounds disagree by more than their iterations"
    " scatter, n iterations count as n / (1 + (k - 1) * ICC) samples (k a round; ICC, the share of their"
    " variance between rounds, pooled over the cells of both runs or this cell's own if larger), which the"
    " 'Worth (n)' column gives, and the test and interval widen to match."
    " Verdicts: 'slower'/'faster': the two-sided Mann-Whitney U test gives p < 0.05 and the"
    " Hodges-Lehmann ratio B/A is beyond 1 +- the threshold; 'same': not significant, or a"
    " significant change within the threshold; 'insufficient (need >= N rounds)': even fully"
    " separated samples could not reach p < 0.05 at these sample sizes (exact test), so no verdict"
    " is given. Ratio and interval: median of all pairwise ratios B/A and its distribution-free"
    " 95% interval (none when the samples are too few).")


def comparison_table(result: RunComparison, models: Mapping[str, Any] | None = None) -> Table:
    """Give the comparison as a Table: one row per cell with means, change, interval, p and verdict."""
    header = ("Cell", "Device", f"A {result.run_a} (ms)", f"B {result.run_b} (ms)", "Change (HL)",
              "95% CI of B/A", "p (MWU)", "Worth (n)", "Verdict")
    rows: list[tuple[str, ...]] = []
    for c in result.cells:
        display = PlanModel.display_in(models, c.setting.model)
        name = c.setting.label().replace(c.setting.model, display, 1) if not c.setting.pipeline else c.setting.label()
        rows.append((
            name,
            c.label + (" (forced)" if c.forced else ""),
            _fmt_ms(c.mean_a, len(c.values_a)),
            _fmt_ms(c.mean_b, len(c.values_b)),
            "-" if c.change_pct is None else f"{c.change_pct:+.1f}%",
            "-" if c.ci is None else f"{c.ci[0]:.3f}-{c.ci[1]:.3f}",
            "-" if c.p_value is None else f"{c.p_value:.3g}",
            _fmt_worth(c),
            c.verdict_text,
        ))
    counts = result.counts()
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    notes = (f"{len(result.cells)} cells: {summary}.",
             f"Threshold {result.threshold:.0%}. " + VERDICT_HELP) + result.notes
    return Table(f"Run {result.run_b} against {result.run_a}", header, tuple(rows),
                 [c.to_json() for c in result.cells], notes)


def _fmt_worth(c: CellComparison) -> str:
    """Give the independent samples a side the test counted: '4 / 4 of 30 / 30 it.' for clustered iterations."""
    if not any(c.n_samples):
        return "-"
    a, b = c.effective_n
    if c.samples != "iterations":
        return f"{a} / {b} rounds"
    return f"{a} / {b} of {c.n_samples[0]} / {c.n_samples[1]} it."


def _fmt_ms(mean: float | None, n: int) -> str:
    return "-" if mean is None else f"{mean:.2f} (n={n})"


def rounds_table(run: RunRow, cases: Sequence[CaseRow]) -> Table:
    """Give one row per cell of a run: rounds, mean, std, median, min, max, CV and flags of the round values,
    and p50 / p90 of every timed iteration where the runner printed them (else of the round values)."""
    from kpmobile.stats import percentile, summarize

    header = ("Device", "Cell", "Rounds", "Mean (ms)", "Std", "Median", "Min", "Max", "CV", "p50", "p90", "Flags")
    order = {fp: i for i, fp in enumerate(device_order(run, cases))}
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    for (fp, s), cell in sorted(cell_samples(cases).items(), key=lambda kv: (order.get(kv[0][0], 0), kv[0][1])):
        values = list(cell.rounds)
        sm = summarize(values)
        pool = list(cell.iterations or cell.rounds)
        p50, p90 = percentile(pool, 50), percentile(pool, 90)
        display = run.plan.model_display(s.model)
        rows.append((device_label(run, fp), s.label().replace(s.model, display, 1), str(sm.n), f"{sm.mean:.2f}",
                     f"{sm.std:.2f}", f"{sm.median:.2f}", f"{sm.min:.2f}", f"{sm.max:.2f}", f"{sm.cv:.1%}",
                     f"{p50:.2f}", f"{p90:.2f}", ", ".join(sm.flags)))
        data.append({"device": fp, "label": device_label(run, fp), "model": s.model, "threads": s.threads,
                     "backend": s.backend, "batch": s.batch, "pipeline": s.pipeline or None,
                     "persons": s.persons or None, "values_ms": values, "n": sm.n, "mean_ms": sm.mean,
                     "std_ms": sm.std, "median_ms": sm.median, "min_ms": sm.min, "max_ms": sm.max, "cv": sm.cv,
                     "p50_ms": p50, "p90_ms": p90, "samples": "iterations" if cell.iterations else "rounds",
                     "n_samples": len(pool), "flags": list(sm.flags)})
    failed = sum(1 for c in cases if c.status != "ok")
    notes: tuple[str, ...] = ("p50 / p90: of every timed iteration where the runner printed them (kpmobile's"
                              " runners), else of the round values.",)
    notes += (f"{failed} case(s) failed and are left out.",) if failed else ()
    return Table("Rounds per cell", header, tuple(rows), data, notes)
