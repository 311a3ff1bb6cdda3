"""Check one backend's outputs against a reference backend's, on the saved first output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kpmobile.backends.registry import backend_info
from kpmobile.backends.result import BackendResult

# (atol, rtol) for numpy.allclose semantics: |other - ref| <= atol + rtol * |ref|, element-wise.
# CPU fp32 engines agree to about 1e-5 relative on real models; 1e-4 / 1e-3 leaves room for
# summation order while still failing on any real difference.
TOL_FP32 = (1e-4, 1e-3)
# GPU fp32: cuDNN and TensorRT may run convolutions in TF32 (10-bit mantissa) on Ampere and later.
TOL_GPU_FP32 = (1e-3, 1e-2)
# fp16 engines: about 3 decimal digits per op, accumulated through the network.
TOL_FP16 = (1e-2, 5e-2)


@dataclass(frozen=True)
class OutputCheck:
    """The agreement of one backend's first output with a reference backend's."""

    reference: str  # backend name
    other: str
    max_abs: float  # max |other - ref|
    max_rel: float  # max |other - ref| / max |ref|: error relative to the output's scale
    atol: float
    rtol: float
    ok: bool
    detail: str  # one line saying what was compared and, when not ok, where it differs


def tolerance_for(backend: str) -> tuple[float, float]:
    """Give (atol, rtol) for comparing `backend` with a CPU fp32 reference."""
    info = backend_info(backend)
    if info.precision == "fp16":
        return TOL_FP16
    return TOL_GPU_FP32 if info.needs_gpu else TOL_FP32


def compare_outputs(
    reference: BackendResult, other: BackendResult, atol: float, rtol: float
) -> OutputCheck:
    """Give the OutputCheck of other's saved first output against reference's.

    ok when shapes match, every value is finite and |other - ref| <= atol + rtol * |ref|
    element-wise (numpy.allclose). Both results must be fed the same batch.
    """
    ref = np.load(Path(reference.output_digest)).astype(np.float64)
    out = np.load(Path(other.output_digest)).astype(np.float64)
    names = f"{other.backend} vs {reference.backend}"

    def fail(detail: str, max_abs: float = float("inf"), max_rel: float = float("inf")) -> OutputCheck:
        return OutputCheck(reference.backend, other.backend, max_abs, max_rel, atol, rtol, False, detail)

    if ref.shape != out.shape:
        return fail(f"{names}: shape {list(out.shape)} != {list(ref.shape)}")
    if not np.isfinite(out).all():
        return fail(f"{names}: {int((~np.isfinite(out)).sum())} non-finite values in {list(out.shape)}")
    diff = np.abs(out - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    bad = diff > atol + rtol * np.abs(ref)
    if not bad.any():
        return OutputCheck(
            reference.backend, other.backend, max_abs, max_rel, atol, rtol, True,
            f"{names}: {list(out.shape)} agree, max abs {max_abs:.3g}, max rel {max_rel:.3g} "
            f"(atol {atol:g}, rtol {rtol:g})",
        )
    worst = np.unravel_index(int(np.argmax(diff - rtol * np.abs(ref))), diff.shape)
    return fail(
        f"{names}: {int(bad.sum())}/{bad.size} values off (atol {atol:g}, rtol {rtol:g}), "
        f"worst at {list(map(int, worst))}: {out[worst]:.6g} vs {ref[worst]:.6g}",
        max_abs, max_rel,
    )
