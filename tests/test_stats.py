"""Pure statistics."""

from __future__ import annotations

import math

import pytest

from kpmobile import stats


def test_summary_of_steady_rounds_has_no_flags() -> None:
    s = stats.summarize([10.0, 10.2, 9.9])
    assert s.n == 3 and s.mean == pytest.approx(10.0333, abs=1e-3) and s.median == 10.0
    assert s.min == 9.9 and s.max == 10.2 and s.cv < 0.05 and s.flags == ()


def test_noisy_and_rising_rounds_are_flagged() -> None:
    assert "cv>5%" in stats.summarize([10.0, 14.0, 9.0]).flags
    assert "trend-up" in stats.summarize([10.0, 10.5, 11.0, 11.6, 12.1]).flags
    # 3 or 4 noisy rounds rise at every step by chance 1 time in 6 or 24: no trend is read from so few.
    assert "trend-up" not in stats.summarize([10.0, 10.5, 11.0, 11.6]).flags
    assert "trend-up" not in stats.summarize([10.0, 10.1, 12.5]).flags
    assert "trend-up" not in stats.summarize([10.0, 10.01, 10.02]).flags


# Round latencies (ms) of a 20-round sweep of pp-tinypose-128x96 on a virtual-hot phone without
# cool-down (tests/test_heat_e2e.py, 2026-12-02, load 4-12): throttled from round 4 on, then drifting.
HOT_SWEEP = [22.608, 25.345, 24.582, 25.063, 47.975, 50.962, 52.778, 47.927, 41.624, 53.891, 50.193, 45.282,
             49.064, 46.27, 45.115, 45.311, 41.943, 39.094, 47.571, 49.403]


def test_a_step_up_through_noise_is_a_trend_and_drift_free_noise_is_not() -> None:
    """A phone that throttles in mid-sweep: 20 rounds, jittered, twice as slow from round 9 on."""
    import random

    rng = random.Random(17)
    jitter = [1 + rng.uniform(-0.08, 0.08) for _ in range(20)]
    step = [100.0 * j * (2.0 if i >= 9 else 1.0) for i, j in enumerate(jitter)]
    flat = [100.0 * j for j in jitter]
    assert "trend-up" in stats.summarize(step).flags
    assert "trend-up" not in stats.summarize(flat).flags
    assert "trend-up" not in stats.summarize(step[::-1]).flags  # falling
    found = stats.step_up(step)
    assert found is not None and found[0] == 9 and found[1] < 0.01 and stats.step_up(flat) is None
    # A measured sweep that throttled early and drifted down after: the step is found where it is.
    hot = stats.step_up(HOT_SWEEP)
    assert hot is not None and hot[0] == 4 and "trend-up" in stats.summarize(HOT_SWEEP).flags
    # A small creep (4 % over the sweep) is not the 10 % a trend through noise needs.
    creep = [100.0 * (1 + 0.002 * i) + (0.3 if i % 2 else -0.3) for i in range(20)]
    assert "trend-up" not in stats.summarize(creep).flags
    # Too few rounds for the correction: a jittered step over 6 rounds is not flagged.
    assert "trend-up" not in stats.summarize([10.0, 10.4, 9.9, 12.5, 12.2, 12.6]).flags


def test_mann_whitney_separates_shifted_samples_and_not_equal_ones() -> None:
    a = [10.0, 10.1, 9.9, 10.05, 9.95, 10.02]
    assert stats.mann_whitney_p(a, [v * 1.3 for v in a]) < 0.01
    assert stats.mann_whitney_p(a, list(a)) > 0.5


def test_compare_verdicts() -> None:
    a = [10.0, 10.1, 9.9, 10.05, 9.95, 10.02]
    assert stats.compare(a, a).verdict == "same"
    assert stats.compare(a, [v * 1.3 for v in a]).verdict == "slower"
    assert stats.compare(a, [v * 0.7 for v in a]).verdict == "faster"
    assert stats.compare(a, [v * 1.01 for v in a]).verdict == "same"


def test_exact_test_matches_the_smallest_p_and_says_insufficient_below_it() -> None:
    from scipy.stats import mannwhitneyu

    for m, n in ((1, 1), (3, 3), (4, 4), (3, 5), (6, 6)):
        a, b = [float(i) for i in range(m)], [100.0 + i for i in range(n)]
        assert stats.mann_whitney_p(a, b) == pytest.approx(mannwhitneyu(b, a, method="exact").pvalue)
        assert stats.min_p_value(m, n) == pytest.approx(stats.mann_whitney_p(a, b))
        assert stats.u_cdf_counts(m, n)[-1] == math.comb(m + n, m)
    assert stats.samples_needed(0.05) == 4 and stats.samples_needed(0.01) == 5
    one = stats.compare([40.0], [44.4])
    assert one.verdict == "insufficient" and one.need == 4 and one.p_value is None and one.ratio == pytest.approx(1.11)
    three = stats.compare([10.0, 10.1, 9.9], [13.0, 13.1, 12.9])
    assert three.verdict == "insufficient" and three.need == 4
    four = stats.compare([10.0, 10.1, 9.9, 10.05], [13.0, 13.1, 12.9, 13.05])
    assert four.verdict == "slower" and four.p_value == pytest.approx(2 / 70)


def test_hodges_lehmann_ratio_and_its_interval_cover_a_known_scale_change() -> None:
    import random

    rng = random.Random(7)
    a = [10 * math.exp(rng.gauss(0, 0.02)) for _ in range(30)]
    b = [11 * math.exp(rng.gauss(0, 0.02)) for _ in range(30)]
    effect = stats.hodges_lehmann_ratio(a, b)
    assert effect.ci is not None and effect.ci[0] < 1.1 < effect.ci[1] and effect.ci[1] - effect.ci[0] < 0.03
    assert effect.ratio == pytest.approx(1.1, rel=0.01)
    assert stats.hodges_lehmann_ratio([40.0], [44.4]).ci is None  # no interval from one sample a side
    lo, hi = stats.hodges_lehmann_ratio([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5]).ci or (0, 0)
    assert (lo, hi) == (pytest.approx(0.375), pytest.approx(4.5))  # k = 1 of 16 at 4 x 4: the whole range


def test_achieved_gflops() -> None:
    assert stats.achieved_gflops(81.56e6, 12.03) == pytest.approx(13.56, rel=1e-2)
