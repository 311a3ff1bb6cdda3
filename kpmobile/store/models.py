"""The typed form of a stored run, its plan and its cases: what `runs import` accepts.

Every id that later reaches a path or a shell word (run id, model, device, serial, backend) has
the form kpmobile makes; numbers are numbers and finite; the plan is an object whose known parts
have their types. Free-form parts (device info, model details) stay as they are.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from kpmobile.records import BenchCase
from kpmobile.store.runid import RUN_ID_PATTERN
from kpmobile.typed import Field, Name, Strict, StrictOpen

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
Status = Annotated[str, Field(pattern=r"^[a-z][a-z_-]{0,31}$")]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Whole = Annotated[int, Field(ge=0, le=1_000_000_000)]
Ms = Annotated[float, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100.5)]  # a share; rounding may lift a sum a little over 100


class CaseSpec(Strict):
    """One planned case (a BenchCase as the plan stores it)."""

    model: Name
    device: Name
    threads: Count
    power_mode: Annotated[int, Field(ge=0, le=3)] = 0
    warmup: Whole = 10
    repeats: Count = 50
    precision: Literal["fp32", "fp16"] = "fp32"
    backend: Name = "arm"
    round: Whole = 0
    batch: Count = 1
    pipeline: Name | None = None
    persons: Count | None = None

    def case(self) -> BenchCase:
        """Give the BenchCase."""
        return BenchCase(**self.model_dump())


class PlanDoc(StrictOpen):
    """A run's plan: the parts kpmobile reads back are typed, the rest is kept."""

    cases: list[CaseSpec] = []
    models: dict[Name, dict[str, Any]] = {}
    devices: dict[Name, dict[str, Any]] = {}
    threads: list[Count] = []
    power_modes: list[Annotated[int, Field(ge=0, le=3)]] = []
    rounds: Count | None = None
    batches: list[Count] = []
    backends: list[Name] = []
    kind: Name | None = None
    options: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    pipelines: dict[Name, dict[str, Any]] = {}


class RunDoc(Strict):
    """A run as exported."""

    id: RunId
    started: float
    finished: float | None
    status: Status
    command: str
    host: str
    kpmobile_version: str
    plan: PlanDoc
    pid: Whole | None = None
    pid_start: Whole | None = None
    error: str | None = None


class CaseDoc(Strict):
    """One stored attempt at a case as exported."""

    run_id: RunId | None = None
    case_key: str
    device_fp: Name
    serial: Name
    model: Name
    model_hash: str | None = None
    artifact_hash: str | None = None
    runner: str | None = None
    runner_version: str | None = None
    backend: Name
    threads: Count
    power_mode: Annotated[int, Field(ge=0, le=3)]
    warmup: Whole
    repeats: Count
    precision: Literal["fp32", "fp16"]
    batch: Count
    round: Whole
    pipeline: Name | None = None
    persons: Count | None = None
    status: Status
    error: str | None = None
    avg_ms: Ms | None = None
    min_ms: Ms | None = None
    max_ms: Ms | None = None
    first_ms: Ms | None = None
    init_ms: Ms | None = None
    record: dict[str, Any] | None = None
    raw_log: str | None = None
    extra: dict[str, Any] | None = None
    created: float
    attempt: Count = 1
    started: float | None = None
    samples_ms: list[Ms] = []

    def expected_key(self) -> str:
        """Give the case key these fields make (a tampered key differs)."""
        return BenchCase(model=self.model, device=self.device_fp, threads=self.threads, power_mode=self.power_mode,
                         warmup=self.warmup, repeats=self.repeats, precision=self.precision, backend=self.backend,
                         round=self.round, batch=self.batch, pipeline=self.pipeline, persons=self.persons).key()


class EnergyDoc(Strict):
    """A case's energy record (its extra's `energy`, bench --energy) as exported."""

    samples: Whole
    idle_samples: Whole
    mean_w: float | None = None  # negative while the battery charges
    idle_w: float | None = None
    energy_mj: Annotated[float, Field(gt=0)] | None = None
    latency_ms: Ms | None = None
    battery: str | None = None
    status: str | None = None
    units: str | None = None
    flags: list[Literal["charging"]] = []
    note: str | None = None
    hint: str | None = None
    power_trace: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = []


class KernelDoc(Strict):
    """One kernel's time in an op profile."""

    op_type: str
    kernel: str
    func: str
    calls: Whole
    avg_ms: Ms
    min_ms: Ms
    max_ms: Ms
    share: Percent


class OpProfileDoc(Strict):
    """One cell's profiling invocation (bench --op-profile) as exported, with its kernels slowest first."""

    run_id: RunId | None = None
    case_key: str
    device_fp: Name
    serial: Name
    model: Name
    backend: Name
    threads: Count
    power_mode: Annotated[int, Field(ge=0, le=3)]
    precision: Literal["fp32", "fp16"]
    batch: Count
    warmup: Whole
    repeats: Count
    runner: str | None = None
    status: Status
    error: str | None = None
    source: str | None = None
    avg_ms: Ms | None = None
    raw_log: str | None = None
    created: float
    kernels: list[KernelDoc] = []


class ExportDoc(Strict):
    """A whole export file, version 2 layout (`exchange.migrate` brings version 1 files up to it)."""

    schema_: Literal["kpmobile-run"] = Field(alias="schema")
    version: Literal[2]
    exported: float | None = None
    exported_by: str | None = None
    run: RunDoc
    devices: dict[Name, dict[str, Any]] = {}
    cases: list[CaseDoc]
    op_profiles: list[OpProfileDoc]
