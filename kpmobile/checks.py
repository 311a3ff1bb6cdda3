"""Check the output mean/std a phone runner prints against a reference's, as benchmark_bin users do.

benchmark_bin (and kpmobile's x86 runner) print each output tensor's mean and standard deviation
for an all-ones input. Comparing them with the reference's figures on the same input catches a
broken .nb without pulling the tensors off the phone. Pure: records in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kpmobile.records import OutputStat

# Relative to the output's scale (max of |mean| and std). fp32 ARM kernels differ from x86 by
# summation order only; fp16 kernels keep about 3 decimal digits per op.
STATS_RTOL_FP32 = 1e-3
STATS_RTOL_FP16 = 5e-2
# An output that is all zeros on the reference has no scale: differences below the smallest normal
# float32 are denormal noise (benchmark_bin prints 3.7e-39 for one of PicoDet's zero outputs).
STATS_ATOL_ZERO = 1.1754944e-38
NOT_COMPARABLE = "not comparable on benchmark_bin (read as float)"


def is_float_dtype(dtype: str | None) -> bool:
    """Tell whether a dtype name is a floating one; an unknown dtype (None) counts as float."""
    return dtype is None or dtype.startswith(("float", "fp", "bfloat", "half"))


@dataclass(frozen=True)
class StatsCheck:
    """The agreement of printed output statistics with the reference's."""

    ok: bool
    max_rel: float  # worst |delta mean| or |delta std| over the output's scale
    rtol: float
    detail: str
    skipped: tuple[str, ...] = ()  # outputs left out, each "output N (dtype): why"


def stats_tolerance(precision: str) -> float:
    """Give the relative tolerance for a runner's precision ("fp32" | "fp16")."""
    return STATS_RTOL_FP16 if precision == "fp16" else STATS_RTOL_FP32


def check_output_stats(reference: Sequence[OutputStat], measured: Sequence[OutputStat],
                       rtol: float = STATS_RTOL_FP32, read_as_float: bool = False) -> StatsCheck:
    """Give whether every measured output's shape, mean and std match the reference's within rtol.

    The error of output i is max(|mean - ref.mean|, |std - ref.std|) / max(|ref.mean|, ref.std);
    shapes must match (a runner that prints no shape, shape (), is compared on mean/std only).
    Outputs are matched by position; both must be computed on the same input (benchmark_bin: all 1.0).
    With `read_as_float` (benchmark_bin reads every tensor as float), outputs whose reference dtype
    is an integer one are left out as not comparable, never flagged.
    """
    if not measured:
        return StatsCheck(False, float("inf"), rtol, "the runner printed no output statistics")
    if len(measured) != len(reference):
        return StatsCheck(False, float("inf"), rtol,
                          f"{len(measured)} outputs printed, the reference has {len(reference)}")
    worst, where = 0.0, ""
    skipped: list[str] = []
    for i, (ref, out) in enumerate(zip(reference, measured)):
        if out.shape and ref.shape and tuple(out.shape) != tuple(ref.shape):
            return StatsCheck(False, float("inf"), rtol,
                              f"output {i}: shape {list(out.shape)} != reference {list(ref.shape)}")
        if read_as_float and not is_float_dtype(ref.dtype):
            skipped.append(f"output {i} ({ref.dtype}): {NOT_COMPARABLE}")
            continue
        scale = max(abs(ref.mean), abs(ref.std))
        delta = max(abs(out.mean - ref.mean), abs(out.std - ref.std))
        rel = delta / scale if scale > 0 else (0.0 if delta <= STATS_ATOL_ZERO else float("inf"))
        if rel != rel:  # NaN printed by the runner
            rel = float("inf")
        if rel > worst or not where:
            worst, where = rel, (f"output {i}: mean {out.mean:.6g} vs {ref.mean:.6g}, "
                                 f"std {out.std:.6g} vs {ref.std:.6g}")
    ok = worst <= rtol
    verdict = "agree" if ok else "diverge"
    compared = len(measured) - len(skipped)
    detail = (f"{compared} outputs {verdict} (worst rel {worst:.3g}, rtol {rtol:g}); {where}" if compared
              else "no output compared")
    if skipped:
        detail += "; " + "; ".join(skipped)
    return StatsCheck(ok, worst, rtol, detail, tuple(skipped))
