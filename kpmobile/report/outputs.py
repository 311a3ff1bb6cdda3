"""The output-stats check, as report code reads it: it lives in kpmobile.checks (the sweep runs it too)."""

from kpmobile.checks import (
    NOT_COMPARABLE,
    STATS_RTOL_FP16,
    STATS_RTOL_FP32,
    StatsCheck,
    check_output_stats,
    is_float_dtype,
    stats_tolerance,
)

__all__ = ["NOT_COMPARABLE", "STATS_RTOL_FP16", "STATS_RTOL_FP32", "StatsCheck", "check_output_stats",
           "is_float_dtype", "stats_tolerance"]
