"""Pure statistics of benchmark samples: summaries, flags, significance and scaling."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CV_LIMIT = 0.05


@dataclass(frozen=True)
class Summary:
    """Round values of one cell, summarised."""

    n: int
    mean: float
    std: float
    median: float
    min: float
    max: float
    cv: float
    flags: tuple[str, ...]


def summarize(values: Sequence[float], cv_limit: float = CV_LIMIT) -> Summary:
    """Give mean, sample std, median, min, max, CV and flags (high CV, upward trend) of round values."""
    if not values:
        raise ValueError("no values to summarise")
    vals = [float(v) for v in values]
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    flags: list[str] = []
    if cv > cv_limit:
        flags.append(f"cv>{cv_limit:.0%}")
    if trends_upward(vals):
        flags.append("trend-up")
    return Summary(len(vals), mean, std, statistics.median(vals), min(vals), max(vals), cv, tuple(flags))


def trends_upward(values: Sequence[float], min_rise: float = 0.03) -> bool:
    """Tell whether values rise steadily: every step up and the last at least `min_rise` above the first."""
    if len(values) < 3:
        return False
    rising = all(b > a for a, b in zip(values, values[1:]))
    return rising and values[-1] >= values[0] * (1 + min_rise)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Give the two-sided Mann-Whitney U p-value (normal approximation with tie correction)."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    i = 0
    tie_term = 0.0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return 1.0
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    return max(0.0, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


def bootstrap_ratio_ci(a: Sequence[float], b: Sequence[float], iters: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Give a bootstrap confidence interval of mean(b) / mean(a)."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(iters):
        sa = [rng.choice(a) for _ in a]
        sb = [rng.choice(b) for _ in b]
        ma = statistics.fmean(sa)
        ratios.append(statistics.fmean(sb) / ma if ma else math.inf)
    ratios.sort()
    lo = ratios[int((1 - level) / 2 * iters)]
    hi = ratios[min(iters - 1, int((1 + level) / 2 * iters))]
    return lo, hi


@dataclass(frozen=True)
class Comparison:
    """Cell B against cell A."""

    ratio: float  # mean(b) / mean(a); > 1 means B is slower
    p_value: float
    ci: tuple[float, float]
    verdict: str  # "slower" | "faster" | "same"


def compare(a: Sequence[float], b: Sequence[float], threshold: float = 0.05, alpha: float = 0.05) -> Comparison:
    """Give B's change against A: a verdict only when both significant and larger than `threshold`."""
    ratio = statistics.fmean(b) / statistics.fmean(a)
    p = mann_whitney_p(a, b)
    ci = bootstrap_ratio_ci(a, b)
    significant = (p < alpha) or (len(a) < 4 or len(b) < 4) and (ci[0] > 1 or ci[1] < 1)
    verdict = "same"
    if significant and ratio > 1 + threshold:
        verdict = "slower"
    elif significant and ratio < 1 - threshold:
        verdict = "faster"
    return Comparison(ratio, p, ci, verdict)


def achieved_gflops(flops: float, latency_ms: float) -> float:
    """Give achieved GFLOP/s of a model of `flops` multiply-adds at `latency_ms` (2 FLOPs per MAC)."""
    return 2 * flops / (latency_ms * 1e-3) / 1e9 if latency_ms > 0 else 0.0
