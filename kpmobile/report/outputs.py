"""The output-stats check, as report code reads it: it lives in kpmobile.checks (the sweep runs it too)."""

from kpmobile.checks import STATS_RTOL_FP16, STATS_RTOL_FP32, StatsCheck, check_output_stats, stats_tolerance

__all__ = ["STATS_RTOL_FP16", "STATS_RTOL_FP32", "StatsCheck", "check_output_stats", "stats_tolerance"]
