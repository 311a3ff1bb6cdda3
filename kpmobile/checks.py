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


@dataclass(frozen=True)
class StatsCheck:
    """The agreement of printed output statistics with the reference's."""

    ok: bool
    max_rel: float  # worst |delta mean| or |delta std| over the output's scale
    rtol: float
    detail: str


def stats_tolerance(precision: str) -> float:
    """Give the relative tolerance for a runner's precision ("fp32" | "fp16")."""
    return STATS_RTOL_FP16 if precision == "fp16" else STATS_RTOL_FP32


def check_output_stats(reference: Sequence[OutputStat], measured: Sequence[OutputStat],
                       rtol: float = STATS_RTOL_FP32) -> StatsCheck:
    """Give whether every measured output's shape, mean and std match the reference's within rtol.

    The error of output i is max(|mean - ref.mean|, |std - ref.std|) / max(|ref.mean|, ref.std);
    shapes must match (a runner that prints no shape, shape (), is compared on mean/std only).
    Outputs are matched by position; both must be computed on the same input (benchmark_bin: all 1.0).
    """
    if not measured:
        return StatsCheck(False, float("inf"), rtol, "the runner printed no output statistics")
    if len(measured) != len(reference):
        return StatsCheck(False, float("inf"), rtol,
                          f"{len(measured)} outputs printed, the reference has {len(reference)}")
    worst, where = 0.0, ""
    for i, (ref, out) in enumerate(zip(reference, measured)):
        if out.shape and ref.shape and tuple(out.shape) != tuple(ref.shape):
            return StatsCheck(False, float("inf"), rtol,
                              f"output {i}: shape {list(out.shape)} != reference {list(ref.shape)}")
        scale = max(abs(ref.mean), abs(ref.std))
        delta = max(abs(out.mean - ref.mean), abs(out.std - ref.std))
        rel = delta / scale if scale > 0 else (0.0 if delta == 0 else float("inf"))
        if rel != rel:  # NaN printed by the runner
            rel = float("inf")
        if rel > worst or not where:
            worst, where = rel, (f"output {i}: mean {out.mean:.6g} vs {ref.mean:.6g}, "
                                 f"std {out.std:.6g} vs {ref.std:.6g}")
    ok = worst <= rtol
    verdict = "agree" if ok else "diverge"
    return StatsCheck(ok, worst, rtol, f"{len(measured)} outputs {verdict} (worst rel {worst:.3g}, "
                                       f"rtol {rtol:g}); {where}")
