"""Pure statistics of benchmark samples: summaries, flags, significance and scaling."""

from __future__ import annotations

import functools
import itertools
import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CV_LIMIT = 0.05
ALPHA = 0.05
EXACT_MAX = 20  # up to this many samples a side, exact null distribution of U (as asv)
THIN_MAX = 1000  # pairwise ratios are taken over at most this many order statistics a side


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


def percentile(values: Sequence[float], q: float) -> float:
    """Give the q-th percentile (0-100) of values, linear between order statistics (numpy's default)."""
    if not values:
        raise ValueError("no values")
    vals = sorted(values)
    pos = (len(vals) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


TREND_RISE = 0.10  # a trend through noise must lift the later rounds' median this much over the earlier's
TREND_MIN_SIDE = 3  # rounds on each side of a step
# Rounds that rise at every step by chance alone: 1 in n! orders of n noisy rounds (1 in 6 at 3 rounds,
# which starred half the cells of a default 3-round sweep; 1 in 120 at 5).
TREND_MIN_STEADY = 5


def trends_upward(values: Sequence[float], min_rise: float = 0.03) -> bool:
    """Tell whether values rise over the rounds.

    Either steadily (every step up over at least TREND_MIN_STEADY rounds and the last at least
    `min_rise` above the first), or through
    noise: the rounds split somewhere into earlier and later ones whose medians differ by TREND_RISE
    or more, and the later are larger (one-sided Mann-Whitney) at ALPHA after a Bonferroni correction
    for the splits tried (`step_up`). That catches a phone that heats and throttles in mid-sweep, a step
    up with jitter on both sides wherever it falls, and a steady creep alike; it needs about 9 rounds.
    """
    if len(values) < TREND_MIN_STEADY:
        return False
    rising = all(b > a for a, b in zip(values, values[1:]))
    if rising and values[-1] >= values[0] * (1 + min_rise):
        return True
    found = step_up(values)
    return found is not None and found[1] < ALPHA


def step_up(values: Sequence[float], min_side: int = TREND_MIN_SIDE,
            min_rise: float = TREND_RISE) -> tuple[int, float] | None:
    """Give the split (the first later round) where the later rounds are most surely slower, and its
    one-sided Mann-Whitney p-value times the number of splits tried; None when no split lifts the
    median by `min_rise`."""
    from scipy.stats import mannwhitneyu

    n = len(values)
    splits = range(min_side, n - min_side + 1)
    best: tuple[int, float] | None = None
    for k in splits:
        before, after = list(values[:k]), list(values[k:])
        if statistics.median(after) < statistics.median(before) * (1 + min_rise):
            continue
        p = float(mannwhitneyu(after, before, alternative="greater").pvalue)
        if not math.isnan(p) and (best is None or p < best[1]):
            best = (k, p)
    return None if best is None else (best[0], min(1.0, best[1] * len(splits)))


def mann_whitney_p(a: Sequence[float], b: Sequence[float], design_effect: float = 1.0) -> float:
    """Give the two-sided Mann-Whitney U p-value: exact for small samples without ties, else normal.

    With a `design_effect` above 1 (samples that come in clusters, see `RoundVariance`) the normal
    approximation's variance of U is multiplied by it: z shrinks by its square root.
    """
    if not a or not b:
        return 1.0
    from scipy.stats import mannwhitneyu

    exact = design_effect <= 1 and max(len(a), len(b)) <= EXACT_MAX and len(set(a) | set(b)) == len(a) + len(b)
    res = mannwhitneyu(list(b), list(a), alternative="two-sided", method="exact" if exact else "asymptotic")
    p = float(res.pvalue)
    if math.isnan(p):
        return 1.0
    if design_effect > 1 and p < 1:
        from scipy.stats import norm

        p = float(2 * norm.sf(float(norm.isf(p / 2)) / math.sqrt(design_effect)))
    return min(1.0, p)


@dataclass(frozen=True)
class RoundVariance:
    """How timed iterations vary on a log scale: within a round, and between the rounds beyond that.

    The iterations of one round share that round's process (its memory layout, its place on the CPUs)
    and that moment's load, so they are not independent samples of the cell: when rounds disagree by
    more than their iterations scatter, n iterations from r rounds carry little more evidence than r
    samples. The intraclass correlation (`icc`) says how much, and the design effect
    1 + (k - 1) * icc (k iterations a round) is the factor by which n overstates the effective number of
    samples (Kish). Estimated by one-way analysis of variance within each set of rounds (one cell of
    one run), pooled over the sets.
    """

    within: float  # variance of log iteration times about their round's mean
    between: float  # variance of the rounds' log means beyond what `within` explains (>= 0)
    rounds: int  # rounds it was estimated from
    sets: int  # sets of rounds (cells of runs)

    @property
    def icc(self) -> float:
        """Give the share of the variance that lies between rounds (0 to 1)."""
        total = self.within + self.between
        return self.between / total if total > 0 else 0.0

    def design_effect(self, per_round: float) -> float:
        """Give 1 + (k - 1) * icc for rounds of `per_round` iterations."""
        return 1.0 + max(0.0, per_round - 1.0) * self.icc


def round_variance(sets: Iterable[Sequence[Sequence[float]]]) -> RoundVariance | None:
    """Give the within- and between-round variance of log times, pooled over sets of rounds.

    Each set is one cell of one run: its rounds, each a sequence of positive iteration times. Only sets
    of 2 or more rounds count; None when there are none (or no iteration varies).
    """
    ss_w = ss_b = 0.0
    df_w = df_b = 0
    n_sum = 0.0
    rounds = used = 0
    for rset in sets:
        logs = [[math.log(v) for v in r if v > 0] for r in rset]
        logs = [r for r in logs if r]
        if len(logs) < 2:
            continue
        means = [statistics.fmean(r) for r in logs]
        sizes = [len(r) for r in logs]
        grand = sum(m * k for m, k in zip(means, sizes)) / sum(sizes)
        ss_w += sum((x - m) ** 2 for r, m in zip(logs, means) for x in r)
        ss_b += sum(k * (m - grand) ** 2 for m, k in zip(means, sizes))
        df_w += sum(sizes) - len(logs)
        df_b += len(logs) - 1
        total = sum(sizes)
        n_sum += total - sum(k * k for k in sizes) / total
        rounds += len(logs)
        used += 1
    if not used or df_w <= 0:
        return None
    ms_w, ms_b = ss_w / df_w, ss_b / df_b
    k0 = n_sum / df_b  # the rounds' mean size, for rounds of unequal sizes
    return RoundVariance(ms_w, max(0.0, (ms_b - ms_w) / k0), rounds, used)


def min_p_value(m: int, n: int) -> float:
    """Give the smallest two-sided p the exact Mann-Whitney U test can reach with samples of m and n.

    It is reached when the samples do not overlap at all: 2 of the C(m+n, m) orderings are that extreme.
    """
    if m == 0 or n == 0:
        return 1.0
    return min(1.0, 2 / math.comb(m + n, m))


def samples_needed(alpha: float = ALPHA, have: int = 1) -> int:
    """Give the smallest equal sample size k (at least `have`) at which the test can pass alpha."""
    k = max(1, have)
    while min_p_value(k, k) >= alpha:
        k += 1
    return k


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


def bootstrap_median_ci(values: Sequence[float], iters: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Give a percentile bootstrap confidence interval of the median of values."""
    rng = random.Random(seed)
    vals = list(values)
    meds = sorted(statistics.median(rng.choices(vals, k=len(vals))) for _ in range(iters))
    return meds[int((1 - level) / 2 * iters)], meds[min(iters - 1, int((1 + level) / 2 * iters))]


@functools.lru_cache(maxsize=256)
def u_cdf_counts(m: int, n: int) -> tuple[float, ...]:
    """Give the cumulative counts of orderings with U <= u, u = 0..m*n (exact null distribution of U).

    Counts the orderings of m + n distinct values by their U with the recurrence
    r(m, n, u) = r(m, n - 1, u) + r(m - 1, n, u - n); the total is C(m + n, m).
    """
    rows = [[1.0] for _ in range(n + 1)]  # rows[j]: counts for (i, j), i = 0 so far
    for i in range(1, m + 1):
        new = [[1.0]]  # (i, 0): one ordering, U = 0
        for j in range(1, n + 1):
            left, up = new[j - 1], rows[j]  # r(i, j-1, u) and r(i-1, j, u-j)
            size = i * j + 1
            counts = [0.0] * size
            for u, c in enumerate(left):
                counts[u] += c
            for u, c in enumerate(up):
                counts[u + j] += c
            new.append(counts)
        rows = new
    return tuple(itertools.accumulate(rows[n]))


def _interval_rank(m: int, n: int, alpha: float, design_effect: float = 1.0) -> int:
    """Give k, 1-based, such that [D(k), D(mn+1-k)] of the m*n pairwise differences covers >= 1-alpha; 0: none.

    A `design_effect` above 1 widens the normal approximation's variance of U by that factor."""
    if design_effect <= 1 and max(m, n) <= EXACT_MAX:
        cdf = u_cdf_counts(m, n)
        total = cdf[-1]
        k = 0
        while k < len(cdf) and 2 * cdf[k] / total <= alpha:
            k += 1
        return k  # P(U <= k-1) <= alpha/2 on each side
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    return max(0, int(math.floor(m * n / 2 - z * math.sqrt(max(1.0, design_effect) * m * n * (m + n + 1) / 12))))


def _thin(values: Sequence[float], most: int) -> list[float]:
    """Give at most `most` evenly spaced order statistics of values (all of them when few)."""
    vals = sorted(values)
    if len(vals) <= most:
        return vals
    return [vals[round(i * (len(vals) - 1) / (most - 1))] for i in range(most)]


@dataclass(frozen=True)
class Effect:
    """B against A as a ratio: the Hodges-Lehmann estimate and its distribution-free interval."""

    ratio: float  # exp(median of log(b_j / a_i) over all pairs); > 1 means B is slower
    ci: tuple[float, float] | None  # Moses interval at 1 - alpha; None where the samples are too few


def hodges_lehmann_ratio(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA,
                         design_effect: float = 1.0) -> Effect:
    """Give the Hodges-Lehmann ratio b/a (median of all pairwise ratios) with its Moses interval.

    The interval is [D(k), D(mn+1-k)] of the sorted pairwise log ratios, k from the null distribution
    of U (exact for small samples), so it covers the true ratio with probability >= 1 - alpha for a
    pure scale change, whatever the distribution. Large samples are thinned to 1000 order statistics.
    Clustered samples (`design_effect` > 1) widen it as they widen the test.
    """
    if not a or not b or min(min(a), min(b)) <= 0:
        raise ValueError("the Hodges-Lehmann ratio needs positive values on both sides")
    import numpy as np

    la, lb = np.log(_thin(a, THIN_MAX)), np.log(_thin(b, THIN_MAX))
    diffs = np.sort(np.subtract.outer(lb, la), axis=None)
    ratio = math.exp(float(np.median(diffs)))
    thinned = (len(la) + len(lb)) / (len(a) + len(b))  # a thinned sample stands for more samples each
    k = _interval_rank(len(la), len(lb), alpha, max(1.0, design_effect * thinned) if design_effect > 1 else 1.0)
    if k < 1:
        return Effect(ratio, None)
    return Effect(ratio, (math.exp(float(diffs[k - 1])), math.exp(float(diffs[len(diffs) - k]))))


VERDICTS = ("faster", "slower", "same", "insufficient")


@dataclass(frozen=True)
class Comparison:
    """Cell B against cell A."""

    ratio: float  # Hodges-Lehmann estimate of B / A; > 1 means B is slower
    p_value: float | None  # two-sided Mann-Whitney U; None when no verdict is possible
    ci: tuple[float, float] | None  # interval of the ratio at 1 - alpha
    verdict: str  # one of VERDICTS
    n: tuple[int, int] = (0, 0)  # samples of A and B
    need: int | None = None  # samples a side needs before a verdict is possible ("insufficient")


def effective_size(n: int, design_effect: float = 1.0) -> int:
    """Give the number of independent samples that n clustered ones are worth: n / design effect, down."""
    return max(1, math.floor(n / design_effect + 1e-9)) if n else 0


def compare(a: Sequence[float], b: Sequence[float], threshold: float = 0.05, alpha: float = ALPHA,
            design_effect: float = 1.0) -> Comparison:
    """Give B's change against A under rules, in the manner of asv's `_stats.py`.

    - "insufficient": even samples that do not overlap could not reach p < alpha at these sizes
      (the smallest exact Mann-Whitney p, 2 / C(m+n, m), is >= alpha): no test is run.
    - "slower" / "faster": p < alpha and the Hodges-Lehmann ratio beyond 1 +- threshold.
    - "same": anything else (not significant, or a significant change smaller than threshold).

    Samples that come in clusters (a round's iterations) count as n / `design_effect` samples a side
    for the first rule (`need` is then in those effective samples), and widen the test's variance and
    the interval by that factor.
    """
    effect = hodges_lehmann_ratio(a, b, alpha, design_effect)
    sizes = (len(a), len(b))
    worth = (effective_size(len(a), design_effect), effective_size(len(b), design_effect))
    if min_p_value(*worth) >= alpha:
        return Comparison(effect.ratio, None, effect.ci, "insufficient", sizes, samples_needed(alpha, min(worth)))
    p = mann_whitney_p(a, b, design_effect)
    verdict = "same"
    if p < alpha and effect.ratio > 1 + threshold:
        verdict = "slower"
    elif p < alpha and effect.ratio < 1 - threshold:
        verdict = "faster"
    return Comparison(effect.ratio, p, effect.ci, verdict, sizes)


def achieved_gflops(flops: float, latency_ms: float) -> float:
    """Give achieved GFLOP/s of a model of `flops` multiply-adds at `latency_ms` (2 FLOPs per MAC)."""
    return 2 * flops / (latency_ms * 1e-3) / 1e9 if latency_ms > 0 else 0.0
