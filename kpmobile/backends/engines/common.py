"""What the engine adapters share: the session protocol, the input data, the timing loop."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

INPUT_SEED = 0  # every backend is fed numpy RandomState(0).uniform(0, 1) float32


class Unavailable(Exception):
    """The backend cannot run here; the message is the reason stored as "skipped"."""


class WorkerFailure(Exception):
    """A measurement failed for a reason the worker understands; `hint` says what to try."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class InputSpec:
    """One declared model input: its name and shape (None for a dynamic or unknown dim)."""

    name: str
    shape: tuple[int | None, ...] | None  # None when the engine cannot tell before feeding


@dataclass
class SessionInfo:
    """What an opened session reports about itself."""

    version: str
    notes: list[str] = field(default_factory=list)


class Session(Protocol):
    """A loaded model on one backend, ready to be fed and run."""

    info: SessionInfo

    def inputs(self) -> list[InputSpec]:
        """Give the declared inputs, in feed order."""
        ...

    def prepare(self, feeds: dict[str, np.ndarray]) -> None:
        """Place the inputs once (outside the timed region); may build the predictor."""
        ...

    def run(self) -> list[np.ndarray]:
        """Give every output of one inference, copied to host memory (this is what is timed)."""
        ...


def make_image(input_shape: Sequence[int], batch: int) -> np.ndarray:
    """Give the deterministic image batch fed to every backend: uniform 0..1 float32, seed 0."""
    shape = (batch, *(int(d) for d in input_shape[1:]))
    return np.random.RandomState(INPUT_SEED).uniform(0.0, 1.0, size=shape).astype(np.float32)


def _is_dynamic(dim: int | None) -> bool:
    return dim is None or dim < 0


def make_feeds(specs: list[InputSpec], input_shape: Sequence[int], batch: int) -> dict[str, np.ndarray]:
    """Give the arrays to feed, by input name, after checking them against the declared shapes.

    The image goes to the input named "image" (or the only / first 4-D one). PaddleDetection's
    auxiliary inputs are filled as its deploy code does: im_shape = (H, W), scale_factor = 1.
    Raises Unavailable when the model's batch dim is fixed to another batch, WorkerFailure when
    the input shape disagrees with the model or an input cannot be filled.
    """
    image = make_image(input_shape, batch)
    if not specs:
        raise WorkerFailure("the model declares no input")
    image_spec = _pick_image_input(specs, image.ndim)
    _check_shape(image_spec, image.shape, batch)
    feeds = {image_spec.name: image}
    height, width = (image.shape[2], image.shape[3]) if image.ndim == 4 else (0, 0)
    for spec in specs:
        if spec is image_spec:
            continue
        if spec.name == "im_shape":
            feeds[spec.name] = np.tile(np.array([[height, width]], np.float32), (batch, 1))
        elif spec.name == "scale_factor":
            feeds[spec.name] = np.ones((batch, 2), np.float32)
        else:
            raise WorkerFailure(
                f"the model has an input {spec.name!r} besides the image that kpmobile cannot fill",
                "export the model with the image as its only input (no post-process)",
            )
    return feeds


def _pick_image_input(specs: list[InputSpec], ndim: int) -> InputSpec:
    if len(specs) == 1:
        return specs[0]
    for spec in specs:
        if spec.name == "image":
            return spec
    for spec in specs:
        if spec.shape is not None and len(spec.shape) == ndim:
            return spec
    return specs[0]


def _check_shape(spec: InputSpec, shape: tuple[int, ...], batch: int) -> None:
    if spec.shape is None:
        return
    declared = spec.shape
    if len(declared) != len(shape):
        raise WorkerFailure(
            f"input {spec.name!r} has rank {len(declared)} {list(declared)}, fed rank {len(shape)} {list(shape)}"
        )
    if not _is_dynamic(declared[0]) and declared[0] != batch:
        raise Unavailable(
            f"model exported with fixed batch {declared[0]}, batch {batch} needs a dynamic batch dim "
            f"(export with InputSpec([None, {', '.join(str(d) for d in shape[1:])}]))"
        )
    for want, got in zip(declared[1:], shape[1:]):
        if not _is_dynamic(want) and want != got:
            raise WorkerFailure(
                f"input_shape {list(shape)} does not match the model's input {spec.name!r} {list(declared)}",
                "pass the input shape the model was exported with",
            )


@dataclass(frozen=True)
class Timings:
    """Per-iteration latencies of one run, and the outputs of its last iteration."""

    times_ms: list[float]
    first_ms: float | None
    outputs: list[np.ndarray]


def time_session(session: Session, warmup: int, repeats: int) -> Timings:
    """Give per-iteration latencies (ms) of `repeats` runs after `warmup` untimed ones."""
    first_ms: float | None = None
    outputs: list[np.ndarray] = []
    for i in range(warmup):
        start = time.perf_counter_ns()
        outputs = session.run()
        if i == 0:
            first_ms = (time.perf_counter_ns() - start) / 1e6
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        outputs = session.run()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return Timings(times, first_ms, outputs)


def output_stats(outputs: list[np.ndarray]) -> list[dict[str, object]]:
    """Give shape, mean and std of every output, as benchmark_bin prints them."""
    stats: list[dict[str, object]] = []
    for out in outputs:
        arr = np.asarray(out)
        stats.append({
            "shape": [int(d) for d in arr.shape],
            "mean": float(arr.mean(dtype=np.float64)) if arr.size else 0.0,
            "std": float(arr.std(dtype=np.float64)) if arr.size else 0.0,
        })
    return stats


def cpu_name() -> str:
    """Give the host CPU's model name and logical CPU count, e.g. "AMD EPYC (2 CPUs)"."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} CPUs)"


def gpu_name(index: int = 0) -> str:
    """Give the name and driver of CUDA GPU `index` from nvidia-smi, or "" when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader", "-i", str(index)],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not out:
        return ""
    name, _, driver = out.partition(",")
    return f"{name.strip()} (driver {driver.strip()})" if driver else name.strip()


def find_nvinfer(majors: Sequence[int] = ()) -> str | None:
    """Give the TensorRT runtime library name the loader finds (libnvinfer.so[.N]), or None."""
    import ctypes

    names = [f"libnvinfer.so.{m}" for m in majors if m] + ["libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"]
    for name in dict.fromkeys(names):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None
