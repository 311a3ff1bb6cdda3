"""Pure statistics."""

from __future__ import annotations

import pytest

from kpmobile import stats


def test_summary_of_steady_rounds_has_no_flags() -> None:
    s = stats.summarize([10.0, 10.2, 9.9])
    assert s.n == 3 and s.mean == pytest.approx(10.0333, abs=1e-3) and s.median == 10.0
    assert s.min == 9.9 and s.max == 10.2 and s.cv < 0.05 and s.flags == ()


def test_noisy_and_rising_rounds_are_flagged() -> None:
    assert "cv>5%" in stats.summarize([10.0, 14.0, 9.0]).flags
    assert "trend-up" in stats.summarize([10.0, 10.5, 11.0, 11.6]).flags
    assert "trend-up" not in stats.summarize([10.0, 10.01, 10.02]).flags


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


def test_achieved_gflops() -> None:
    assert stats.achieved_gflops(81.56e6, 12.03) == pytest.approx(13.56, rel=1e-2)
