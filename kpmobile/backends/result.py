"""The result of one backend measurement, and the pure statistics behind it (stdlib only)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kpmobile.records import OutputStat


@dataclass(frozen=True)
class TimingSummary:
    """Latency and FPS statistics of one run's per-iteration times."""

    avg_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    fps_mean: float
    fps_std: float


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize_times(times_ms: Sequence[float]) -> TimingSummary:
    """Give mean/min/max/std latency and MMPose-style FPS (mean +- std of 1000/t per iteration).

    FPS counts iterations per second whatever the batch, as the MMPose table does. Standard
    deviations are sample ones (n - 1), 0 for a single iteration.
    """
    if not times_ms:
        raise ValueError("no timed iterations")
    if min(times_ms) <= 0:
        raise ValueError("non-positive iteration time")
    fps = [1000.0 / t for t in times_ms]
    return TimingSummary(
        avg_ms=statistics.fmean(times_ms),
        min_ms=min(times_ms),
        max_ms=max(times_ms),
        std_ms=_std(times_ms),
        fps_mean=statistics.fmean(fps),
        fps_std=_std(fps),
    )


@dataclass(frozen=True)
class BackendResult:
    """One measurement of a model on a host backend, made in its own worker process."""

    backend: str
    batch: int
    threads: int
    times_ms: tuple[float, ...]  # per timed iteration, warmup excluded
    avg_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    fps_mean: float  # iterations per second, whatever the batch (MMPose)
    fps_std: float
    outputs: tuple[OutputStat, ...]  # every output of the last iteration: shape, mean, std
    output_digest: str  # path of a .npy holding the first output, for compare_outputs
    version: str  # engine and version, e.g. "paddle 2.6.2 (8ce0de58)"
    notes: tuple[str, ...] = ()
    input_shape: tuple[int, ...] = ()  # the array fed: (batch, C, H, W)
    init_ms: float | None = None  # predictor/session creation
    first_ms: float | None = None  # first warmup iteration (TensorRT builds its engine here)
    device: str = ""  # CPU model or GPU name the worker ran on
    warmup: int = 0

    @property
    def repeats(self) -> int:
        """Give the number of timed iterations."""
        return len(self.times_ms)

    def to_json(self) -> dict[str, Any]:
        """Give the result as plain JSON types."""
        data = asdict(self)
        data["times_ms"] = list(self.times_ms)
        data["outputs"] = [
            {"shape": list(o.shape), "mean": o.mean, "std": o.std} for o in self.outputs
        ]
        data["notes"] = list(self.notes)
        data["input_shape"] = list(self.input_shape)
        return data


def result_from_worker(payload: dict[str, Any]) -> BackendResult:
    """Give the BackendResult described by a worker's "ok" JSON payload."""
    times = tuple(float(t) for t in payload["times_ms"])
    summary = summarize_times(times)
    return BackendResult(
        backend=str(payload["backend"]),
        batch=int(payload["batch"]),
        threads=int(payload["threads"]),
        times_ms=times,
        avg_ms=summary.avg_ms,
        min_ms=summary.min_ms,
        max_ms=summary.max_ms,
        std_ms=summary.std_ms,
        fps_mean=summary.fps_mean,
        fps_std=summary.fps_std,
        outputs=tuple(
            OutputStat(tuple(int(d) for d in o["shape"]), float(o["mean"]), float(o["std"]))
            for o in payload["outputs"]
        ),
        output_digest=str(payload["output_path"]),
        version=str(payload["version"]),
        notes=tuple(str(n) for n in payload.get("notes", ())),
        input_shape=tuple(int(d) for d in payload.get("input_shape", ())),
        init_ms=_opt_float(payload.get("init_ms")),
        first_ms=_opt_float(payload.get("first_ms")),
        device=str(payload.get("device", "")),
        warmup=int(payload.get("warmup", 0)),
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
