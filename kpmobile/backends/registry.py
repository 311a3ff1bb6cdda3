"""The host backends kpmobile can measure on, and the error for one that cannot run here."""

from __future__ import annotations

from dataclasses import dataclass

from kpmobile.errors import ConfigError, KpError


@dataclass(frozen=True)
class BackendInfo:
    """One host backend: which engine runs it, whether it needs a GPU, which server column it fills."""

    name: str
    engine: str  # "lite" | "paddle" | "ort"
    needs_gpu: bool
    column: str | None  # column of the "Benchmark on Server" table, None when it fills none
    precision: str = "fp32"  # "fp32" | "fp16": picks the output-check tolerance


BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo("lite-x86", "lite", False, None),
        BackendInfo("paddle-cpu", "paddle", False, None),
        BackendInfo("paddle-mkldnn", "paddle", False, "CPU + MKLDNN"),
        BackendInfo("paddle-gpu", "paddle", True, "GPU"),
        BackendInfo("paddle-trt-fp32", "paddle", True, "TensorRT (FP32)"),
        BackendInfo("paddle-trt-fp16", "paddle", True, "TensorRT (FP16)", precision="fp16"),
        BackendInfo("ort-cpu", "ort", False, None),
        BackendInfo("ort-cuda", "ort", True, None),
        BackendInfo("ort-trt", "ort", True, None),
    )
}

ENGINES = ("lite", "paddle", "ort")


def backend_info(backend: str) -> BackendInfo:
    """Give the BackendInfo of `backend`, or raise ConfigError naming the known backends."""
    try:
        return BACKENDS[backend]
    except KeyError:
        raise ConfigError(
            f"unknown backend {backend!r}", f"choose one of: {', '.join(BACKENDS)}"
        ) from None


class BackendUnavailable(KpError):
    """The backend cannot run here (missing engine build, no GPU, model not exportable to it).

    A sweep stores the case as skipped with `reason`; it is not a failure of the measurement.
    """

    exit_code = 3

    def __init__(self, backend: str, reason: str, hint: str = "") -> None:
        super().__init__(f"{backend} unavailable: {reason}", hint)
        self.backend = backend
        self.reason = reason
