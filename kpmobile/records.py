"""Frozen records passed between layers: models, devices, cases and parsed runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry, or a user's exported model directory."""

    name: str  # catalogue key, e.g. "pp-tinypose-128x96"
    display: str  # row label in the tables, e.g. "PP-TinyPose-128x96 (pose)"
    family: str  # builder: "tinypose" | "picodet" | "litehrnet" | "hrnet" | "user"
    task: str  # "pose" | "det"
    input_shape: tuple[int, ...]  # NCHW at batch 1
    arch: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    published: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    path: str | None = None  # user model directory (family "user")


@dataclass(frozen=True)
class OutputStat:
    """One output tensor as benchmark_bin prints it."""

    shape: tuple[int, ...]
    mean: float
    std: float


@dataclass(frozen=True)
class LogDevice:
    """The `Device Info` block of a benchmark_bin log."""

    brand: str | None = None
    device: str | None = None
    model: str | None = None
    android_version: str | None = None
    api_level: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One complete run parsed from a runner log; absent values are None."""

    format: str  # "benchmark_bin" | "benchmark_bin_legacy" | "benchmark_sh" | "det_keypoint_demo"
    model: str | None = None
    avg_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    first_ms: float | None = None
    init_ms: float | None = None
    threads: int | None = None
    power_mode: int | None = None
    warmup: int | None = None
    repeats: int | None = None
    backend: str | None = None
    cpu_precision: str | None = None
    run_delay: float | None = None
    init_mb: float | None = None
    peak_mb: float | None = None
    device: LogDevice | None = None
    outputs: tuple[OutputStat, ...] = ()
    stages: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    abi: str | None = None  # "armv7" | "armv8" | "x86_64" ..., as the log or the runner says
    runner_version: str | None = None  # e.g. "v2.13-rc"
    input_shape: str | None = None  # as passed to --input_shape, e.g. "1,3,128,96"
    threads_applied: bool | None = None  # False when the runner could not set threads (x86 MobileConfig)
    persons_found: int | None = None  # pipeline runs: persons the detector found
    samples_ms: tuple[float, ...] = ()  # per-iteration times where the runner printed them (kpmobile's)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Give the record as plain JSON types."""
        data = asdict(self)
        data["samples_ms"] = list(self.samples_ms)
        data["outputs"] = [
            {"shape": list(o.shape), "mean": o.mean, "std": o.std} for o in self.outputs
        ]
        data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class CpuCluster:
    """CPU cores sharing a core type and max frequency."""

    cores: tuple[int, ...]
    core_name: str
    max_khz: int


@dataclass(frozen=True)
class DeviceInfo:
    """A phone (or the host) as kpmobile identifies it."""

    serial: str
    state: str  # "device" | "offline" | "unauthorized" | ...
    server: str = "127.0.0.1:5037"  # adb server host:port that sees it
    brand: str | None = None
    model: str | None = None
    device: str | None = None
    abi: str | None = None
    abis: tuple[str, ...] = ()
    android_version: str | None = None
    api_level: int | None = None
    soc: str | None = None
    profile: str | None = None
    fingerprint: str | None = None
    clusters: tuple[CpuCluster, ...] = ()
    big_cores: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()
    peak_gflops: float | None = None  # FP32, computed from the clusters' core types and frequencies
    slowdown_pct: float | None = None  # a virtual phone's test-only --slowdown, from its getprop

    @property
    def label(self) -> str:
        """Give the column label used in tables."""
        return self.serial

    def to_json(self) -> dict[str, Any]:
        """Give the device as plain JSON types."""
        data = asdict(self)
        data["abis"] = list(self.abis)
        data["clusters"] = [
            {"cores": list(c.cores), "core_name": c.core_name, "max_khz": c.max_khz}
            for c in self.clusters
        ]
        data["big_cores"] = list(self.big_cores)
        data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class BenchCase:
    """One runner invocation: a model on a device with one setting."""

    model: str
    device: str  # device fingerprint (or serial before identification)
    threads: int
    power_mode: int = 0
    warmup: int = 10
    repeats: int = 50
    precision: str = "fp32"
    backend: str = "arm"
    round: int = 0
    batch: int = 1
    pipeline: str | None = None
    persons: int | None = None

    def key(self) -> str:
        """Give a stable identity of the case, used to resume a run without repeating a case."""
        return "|".join(
            str(x)
            for x in (
                self.model, self.device, self.backend, self.threads, self.power_mode,
                self.precision, self.batch, self.pipeline, self.persons, self.round,
            )
        )
