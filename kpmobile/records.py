"""Frozen records passed between layers: models, devices, cases and parsed runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
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
    dtype: str | None = None  # "float32", "int64", ...: known from the model (the x86 reference), not from a log


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
    emulated: bool = False  # the phone says it runs under qemu (ro.kernel.qemu / ro.boot.qemu): not phone timings
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


@dataclass(frozen=True)
class KernelTime:
    """Time of one (op type, kernel, function) over a run's ops, from a profiling runner."""

    op_type: str  # e.g. conv2d
    kernel: str  # the kernel's place, e.g. arm/float/NCHW
    func: str  # the kernel function, e.g. conv1x1s1_gemm_fp32 (NotImpl when unnamed)
    calls: int  # ops of the model that ran this kernel
    avg_ms: float  # summed over those ops, per inference
    min_ms: float
    max_ms: float
    share: float  # percent of the summed average over all kernels

    def to_json(self) -> dict[str, Any]:
        """Give the row as JSON."""
        return asdict(self)


@dataclass(frozen=True)
class Energy:
    """What a case cost the battery; energy_mj is None (with a note) when no clean figure exists."""

    samples: int  # run samples
    idle_samples: int
    mean_w: float | None = None
    idle_w: float | None = None
    energy_mj: float | None = None  # (mean_w - idle_w) x mean latency
    latency_ms: float | None = None
    battery: str | None = None  # the power_supply folder read
    status: str | None = None  # the status most samples gave
    units: str | None = None  # how current and voltage were read
    flags: tuple[str, ...] = ()
    note: str | None = None
    hint: str | None = None
    power_trace: tuple[tuple[float, float], ...] = field(default=(), compare=False)  # (uptime s, W) of run samples

    def to_json(self) -> dict[str, Any]:
        """Give the record as JSON."""
        data = asdict(self)
        data["flags"] = list(self.flags)
        data["power_trace"] = [list(p) for p in self.power_trace]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Energy:
        """Give the record from its JSON."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["flags"] = tuple(known.get("flags") or ())
        known["power_trace"] = tuple(tuple(p) for p in known.get("power_trace") or ())
        return cls(**known)


# the run plan ----------------------------------------------------------------------------------------
PLAN_VERSION = 2  # 1: the untyped dicts stored before RunPlan (no "version" key); read by RunPlan.from_json


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values or ())


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class PlanModel:
    """What a run's plan keeps of a model: its label, input, task and complexity."""

    display: str = ""
    input_shape: tuple[int, ...] = ()
    task: str | None = None
    flops: float | None = None  # multiply-adds (phone sweeps: for the roofline)
    published: dict[str, float] = field(default_factory=dict, hash=False)
    complexity: dict[str, Any] | None = field(default=None, hash=False)  # host sweeps: zoo.complexity.model_info

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanModel:
        """Give the model entry of a stored plan (any version)."""
        complexity = data.get("complexity")
        return cls(display=str(data.get("display") or ""), input_shape=_ints(data.get("input_shape")),
                   task=_opt_str(data.get("task")), flops=_opt_float(data.get("flops")),
                   published={str(k): float(v) for k, v in (data.get("published") or {}).items()},
                   complexity=dict(complexity) if isinstance(complexity, Mapping) else None)

    @staticmethod
    def display_in(models: Mapping[str, PlanModel | Mapping[str, Any]] | None, name: str) -> str:
        """Give a model's display name among a plan's models (typed or as stored), or its name."""
        meta = (models or {}).get(name)
        if meta is None:
            return name
        display = meta.display if isinstance(meta, PlanModel) else str(meta.get("display") or "")
        return display or name

    def to_json(self) -> dict[str, Any]:
        """Give the entry as plain JSON types (absent values left out)."""
        data: dict[str, Any] = {"display": self.display, "input_shape": list(self.input_shape)}
        if self.task is not None:
            data["task"] = self.task
        data["flops"] = self.flops
        if self.published:
            data["published"] = dict(self.published)
        if self.complexity is not None:
            data["complexity"] = dict(self.complexity)
        return data


@dataclass(frozen=True)
class PlanDevice:
    """What a run's plan keeps of a device: its column label and what it was when the run began."""

    serial: str = ""
    label: str = ""
    profile: str | None = None
    soc: str | None = None
    abi: str | None = None
    model: str | None = None
    peak_gflops: float | None = None
    big_cores: tuple[int, ...] = ()
    thermal_limit_c: float | None = None
    pipeline_mode: str | None = None
    hostname: str | None = None  # host sweeps
    gpus: str | None = None
    cpus: int | None = None
    load_avg: float | None = None
    emulated: bool = False  # the phone said it runs under qemu: its timings are not a phone's

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanDevice:
        """Give the device entry of a stored plan (any version)."""
        cpus = data.get("cpus")
        return cls(serial=str(data.get("serial") or ""), label=str(data.get("label") or ""),
                   profile=_opt_str(data.get("profile")), soc=_opt_str(data.get("soc")),
                   abi=_opt_str(data.get("abi")), model=_opt_str(data.get("model")),
                   peak_gflops=_opt_float(data.get("peak_gflops")), big_cores=_ints(data.get("big_cores")),
                   thermal_limit_c=_opt_float(data.get("thermal_limit_c")),
                   pipeline_mode=_opt_str(data.get("pipeline_mode")), hostname=_opt_str(data.get("hostname")),
                   gpus=_opt_str(data.get("gpus")), cpus=None if cpus is None else int(cpus),
                   load_avg=_opt_float(data.get("load_avg")), emulated=bool(data.get("emulated")))

    def to_json(self) -> dict[str, Any]:
        """Give the entry as plain JSON types (absent values left out)."""
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None or (key == "big_cores" and not value) or (key == "emulated" and not value):
                continue
            data[key] = list(value) if isinstance(value, tuple) else value
        return data

    def text(self, key: str) -> str | None:
        """Give one of the text fields by name (serial, label, profile, soc, abi, model), or None."""
        value = getattr(self, key, None)
        return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class PlanPipeline:
    """A detector + pose pipeline of a run."""

    det: str
    pose: str
    persons: tuple[int, ...] = (1,)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanPipeline:
        """Give the pipeline entry of a stored plan."""
        return cls(str(data.get("det") or ""), str(data.get("pose") or ""), _ints(data.get("persons")) or (1,))

    def to_json(self) -> dict[str, Any]:
        """Give the entry as plain JSON types."""
        return {"det": self.det, "pose": self.pose, "persons": list(self.persons)}


@dataclass(frozen=True)
class SkippedPhone:
    """A phone attached but not ready when the run began (unauthorized, offline)."""

    state: str
    reason: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SkippedPhone:
        """Give the entry of a stored plan."""
        state = str(data.get("state") or "")
        return cls(state, str(data.get("reason") or state))

    def to_json(self) -> dict[str, Any]:
        """Give the entry as plain JSON types."""
        return {"state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class PlanOptions:
    """The settings a resumed run keeps (servers and runners given when resuming win)."""

    servers: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()
    persons: tuple[int, ...] = (1,)
    cooldown_s: float | None = None
    thermal_wait_s: float | None = None
    core_sample_s: float | None = None
    warmup: int | None = None
    repeats: int | None = None
    runner: str | None = None
    pipeline_runner: str | None = None
    memory: bool = False  # one memory-profile invocation per cell (kpmobile bench --memory)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanOptions:
        """Give the options of a stored plan."""
        def opt_int(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        return cls(servers=tuple(str(s) for s in data.get("servers") or ()),
                   pipelines=tuple(str(p) for p in data.get("pipelines") or ()),
                   persons=_ints(data.get("persons")) or (1,),
                   cooldown_s=_opt_float(data.get("cooldown_s")), thermal_wait_s=_opt_float(data.get("thermal_wait_s")),
                   core_sample_s=_opt_float(data.get("core_sample_s")), warmup=opt_int("warmup"),
                   repeats=opt_int("repeats"), runner=_opt_str(data.get("runner")),
                   pipeline_runner=_opt_str(data.get("pipeline_runner")), memory=bool(data.get("memory")))

    def to_json(self) -> dict[str, Any]:
        """Give the options as plain JSON types."""
        data = asdict(self)
        for key in ("servers", "pipelines", "persons"):
            data[key] = list(data[key])
        return data


def _case_from_json(data: Mapping[str, Any]) -> BenchCase:
    names = {f.name for f in fields(BenchCase)}
    return BenchCase(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class RunPlan:
    """What a run set out to measure: its cases, models and devices, and the settings to resume it.

    Stored as JSON in the run's row. Version 1 plans (untyped dicts without "version"; phone
    plans without "kind") are read by from_json; to_json always writes the current version.
    """

    kind: str = "phone"  # "phone" | "host"
    cases: tuple[BenchCase, ...] = ()
    models: dict[str, PlanModel] = field(default_factory=dict, hash=False)
    devices: dict[str, PlanDevice] = field(default_factory=dict, hash=False)
    threads: tuple[int, ...] = ()
    power_modes: tuple[int, ...] = ()
    rounds: int = 1
    shuffle_seed: int | None = None  # each round's cases ran in an order shuffled with it; `cases` is that order
    skipped: dict[str, SkippedPhone] = field(default_factory=dict, hash=False)  # serial -> why it was not used
    pipelines: dict[str, PlanPipeline] = field(default_factory=dict, hash=False)
    options: PlanOptions = PlanOptions()
    batches: tuple[int, ...] = ()  # host sweeps
    backends: tuple[str, ...] = ()
    reference: str | None = None  # the backend host outputs are checked against
    counters: dict[str, Any] = field(default_factory=dict, hash=False)  # the sweep's outcome, as JSON
    version: int = PLAN_VERSION

    @property
    def is_host(self) -> bool:
        """Tell whether the run measured the host's server backends."""
        return self.kind == "host"

    def model_display(self, model: str) -> str:
        """Give a model's display name in this run, or its name."""
        meta = self.models.get(model)
        return meta.display if meta is not None and meta.display else model

    def device_label(self, fp: str) -> str:
        """Give a device's column label in this run, or its fingerprint."""
        meta = self.devices.get(fp)
        return meta.label if meta is not None and meta.label else fp

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunPlan:
        """Give the plan stored as `data` (any version; unknown keys are ignored)."""
        d: Mapping[str, Any] = data or {}
        version = int(d.get("version") or 1)
        if version > PLAN_VERSION:
            from kpmobile.errors import ConfigError

            raise ConfigError(f"run plan version {version} is newer than this kpmobile reads ({PLAN_VERSION})",
                              "upgrade kpmobile to read this store")
        return cls(
            kind=str(d.get("kind") or "phone"),
            cases=tuple(_case_from_json(c) for c in d.get("cases") or ()),
            models={str(k): PlanModel.from_json(v or {}) for k, v in (d.get("models") or {}).items()},
            devices={str(k): PlanDevice.from_json(v or {}) for k, v in (d.get("devices") or {}).items()},
            threads=_ints(d.get("threads")),
            power_modes=_ints(d.get("power_modes")),
            rounds=int(d.get("rounds") or 1),
            shuffle_seed=None if d.get("shuffle_seed") is None else int(d["shuffle_seed"]),
            skipped={str(k): SkippedPhone.from_json(v or {}) for k, v in (d.get("skipped") or {}).items()},
            pipelines={str(k): PlanPipeline.from_json(v or {}) for k, v in (d.get("pipelines") or {}).items()},
            options=PlanOptions.from_json(d.get("options") or {}),
            batches=_ints(d.get("batches")),
            backends=tuple(str(b) for b in d.get("backends") or ()),
            reference=_opt_str(d.get("reference")),
            counters=dict(d.get("counters") or {}),
        )

    @classmethod
    def of(cls, plan: RunPlan | Mapping[str, Any] | None) -> RunPlan:
        """Give `plan` as a RunPlan (a stored JSON dict is read with from_json)."""
        return plan if isinstance(plan, RunPlan) else cls.from_json(plan)

    def to_json(self) -> dict[str, Any]:
        """Give the plan as plain JSON types (the current version)."""
        data: dict[str, Any] = {
            "version": self.version, "kind": self.kind,
            "cases": [asdict(c) for c in self.cases],
            "models": {k: v.to_json() for k, v in self.models.items()},
            "devices": {k: v.to_json() for k, v in self.devices.items()},
            "threads": list(self.threads), "power_modes": list(self.power_modes), "rounds": self.rounds,
            "skipped": {k: v.to_json() for k, v in self.skipped.items()},
            "pipelines": {k: v.to_json() for k, v in self.pipelines.items()},
            "options": self.options.to_json(),
        }
        if self.is_host:
            data.update(batches=list(self.batches), backends=list(self.backends), reference=self.reference)
        if self.counters:
            data["counters"] = dict(self.counters)
        if self.shuffle_seed is not None:
            data["shuffle_seed"] = self.shuffle_seed
        return data


# what a case saw besides its numbers -----------------------------------------------------------------
@dataclass(frozen=True)
class OutputCheck:
    """A case's outputs against the reference's: phones compare printed stats, hosts the tensors."""

    ok: bool | None  # None: no reference to compare with
    detail: str
    rtol: float | None = None
    max_rel: float | None = None
    max_abs: float | None = None
    atol: float | None = None
    reference: str | None = None  # host: the reference backend
    not_comparable: tuple[str, ...] = ()  # outputs left out: "output 1 (int64): not comparable on benchmark_bin ..."

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputCheck:
        """Give a stored check."""
        ok = data.get("ok")
        return cls(None if ok is None else bool(ok), str(data.get("detail") or ""), _opt_float(data.get("rtol")),
                   _opt_float(data.get("max_rel")), _opt_float(data.get("max_abs")), _opt_float(data.get("atol")),
                   _opt_str(data.get("reference")), tuple(str(n) for n in data.get("not_comparable") or ()))

    def to_json(self) -> dict[str, Any]:
        """Give the check as plain JSON types (absent values left out, but ok and max_rel always)."""
        data: dict[str, Any] = {k: v for k, v in asdict(self).items() if v is not None and k != "not_comparable"}
        data["ok"] = self.ok
        if self.not_comparable:
            data["not_comparable"] = list(self.not_comparable)
        return data


@dataclass(frozen=True)
class MemoryFigures:
    """A cell's memory from its one memory-profile invocation (kpmobile bench --memory)."""

    source: str  # what measured it: benchmark_bin's monitor, or the runner's own process (VmHWM)
    init_mb: float | None = None
    peak_mb: float | None = None
    error: str | None = None  # why the memory run gave no figures

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemoryFigures:
        """Give stored memory figures."""
        return cls(str(data.get("source") or ""), _opt_float(data.get("init_mb")), _opt_float(data.get("peak_mb")),
                   _opt_str(data.get("error")))

    def to_json(self) -> dict[str, Any]:
        """Give the figures as plain JSON types (absent values left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class EchoDifference:
    """A flag whose echo in the runner's log differs from what kpmobile passed."""

    flag: str  # "threads", "power_mode", "input_shape", ...
    asked: str
    echoed: str | None  # None: the runner did not echo it


@dataclass(frozen=True)
class Telemetry:
    """What the phone was like around a case: cool-down, snapshots, sampled cores (as JSON objects)."""

    cooldown: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    throttled_cores: dict[str, Any] | list[Any] | None = None
    cores: dict[str, Any] | None = None
    error: str | None = None  # why after-case telemetry could not be read

    def to_json(self) -> dict[str, Any]:
        """Give the telemetry as the keys a case's extra JSON has always had."""
        data: dict[str, Any] = {}
        for key in ("cooldown", "before", "after", "throttled_cores", "cores"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.error is not None:
            data["telemetry_error"] = self.error
        return data


@dataclass(frozen=True)
class HostFigures:
    """What a host backend reports beside the latencies."""

    fps_mean: float
    fps_std: float
    std_ms: float
    version: str
    device: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseExtra:
    """A case's facts beside its numbers: flags, telemetry, the output check, persons found."""

    flags: tuple[str, ...] = ()
    telemetry: Telemetry | None = None
    output_check: OutputCheck | None = None  # phones: printed stats vs the host's
    check: OutputCheck | None = None  # host: tensors vs the reference backend's
    persons_found: int | None = None
    host: HostFigures | None = None
    emulated: bool = False  # the phone said it runs under qemu: these timings are not a phone's
    memory: MemoryFigures | None = None
    echo: tuple[EchoDifference, ...] = ()
    round_trips: int | None = None  # phones: device round trips the case took (adb services opened)
    energy: Energy | None = None  # bench --energy: what the case cost the battery

    def with_flag(self, flag: str) -> CaseExtra:
        """Give this extra with `flag` added."""
        return replace(self, flags=(*self.flags, flag))

    def to_json(self) -> dict[str, Any]:
        """Give the extra as the JSON stored in the case's row."""
        data: dict[str, Any] = self.telemetry.to_json() if self.telemetry is not None else {}
        if self.telemetry is not None or self.flags:
            data["flags"] = list(self.flags)
        if self.host is not None:
            h = self.host
            data.update(fps_mean=h.fps_mean, fps_std=h.fps_std, std_ms=h.std_ms, version=h.version, device=h.device,
                        notes=list(h.notes))
        if self.output_check is not None:
            data["output_check"] = self.output_check.to_json()
            data["output_check"].setdefault("max_rel", None)
        if self.check is not None:
            data["check"] = self.check.to_json()
        if self.persons_found is not None:
            data["persons_found"] = self.persons_found
        if self.emulated:
            data["emulated"] = True
        if self.memory is not None:
            data["memory"] = self.memory.to_json()
        if self.echo:
            data["echo"] = {e.flag: {"asked": e.asked, "echoed": e.echoed} for e in self.echo}
        if self.round_trips is not None:
            data["round_trips"] = self.round_trips
        if self.energy is not None:
            data["energy"] = self.energy.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseExtra:
        """Give the extra stored in a case's row."""
        keys = ("cooldown", "before", "after", "throttled_cores", "cores", "telemetry_error")
        telemetry = None
        if any(k in data for k in keys):
            telemetry = Telemetry(data.get("cooldown"), data.get("before"), data.get("after"),
                                  data.get("throttled_cores"), data.get("cores"), _opt_str(data.get("telemetry_error")))
        host = None
        if "fps_mean" in data:
            host = HostFigures(float(data["fps_mean"]), float(data.get("fps_std") or 0.0),
                               float(data.get("std_ms") or 0.0), str(data.get("version") or ""),
                               str(data.get("device") or ""), tuple(str(n) for n in data.get("notes") or ()))
        oc, hc, en = data.get("output_check"), data.get("check"), data.get("energy")
        persons, trips = data.get("persons_found"), data.get("round_trips")
        memory, echo = data.get("memory"), data.get("echo")
        echoes = tuple(EchoDifference(str(k), str(v.get("asked")), _opt_str(v.get("echoed")))
                       for k, v in (echo.items() if isinstance(echo, Mapping) else ()) if isinstance(v, Mapping))
        return cls(tuple(str(f) for f in data.get("flags") or ()), telemetry,
                   OutputCheck.from_json(oc) if isinstance(oc, Mapping) else None,
                   OutputCheck.from_json(hc) if isinstance(hc, Mapping) else None,
                   None if persons is None else int(persons), host, bool(data.get("emulated")),
                   MemoryFigures.from_json(memory) if isinstance(memory, Mapping) else None, echoes,
                   None if trips is None else int(trips),
                   Energy.from_json(dict(en)) if isinstance(en, Mapping) else None)
