"""Pure planning of a sweep: which cases run, in which order, on which device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kpmobile.records import BenchCase

DEFAULT_MODELS = ("pp-tinypose-128x96", "picodet-s-192", "picodet-s-320")


@dataclass
class BenchOptions:
    """Everything `kpmobile bench` was asked to do (sweep file, then command-line flags on top)."""

    models: Sequence[str] = DEFAULT_MODELS
    threads: Sequence[int] = (1, 4)
    devices: Sequence[str] = ()  # serials or fingerprints to keep, or "host"; empty = all attached phones
    profiles: Sequence[str] = ()  # keep only phones matching these profiles
    servers: Sequence[str] = ()  # adb servers HOST:PORT; empty = the local one
    no_virtual: bool = False
    runner: Path | None = None  # benchmark_bin for ARM phones
    warmup: int = 10
    repeats: int = 30
    rounds: int = 1
    power_mode: int = 0
    power_modes: Sequence[int] = ()  # several power modes to sweep; empty = (power_mode,)
    precision: str = "fp32"
    cooldown_s: float = 0.0
    backends: Sequence[str] = ()  # host backends (with devices == ["host"])
    batches: Sequence[int] = (1,)
    pipelines: Sequence[str] = ()  # "picodet-s-192+pp-tinypose-128x96"
    persons: Sequence[int] = (1,)
    pipeline_runner: Path | None = None  # PaddleDetection lite `main` for ARM phones
    out_dir: Path = Path("kpmobile-out")
    db: Path | None = None
    resume: str | None = None
    case_timeout_s: float = 600.0
    command: str = "kpmobile bench"
    virtual_profile: str = "virtual"
    config: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def on_host(self) -> bool:
        """Tell whether the sweep targets the host's server backends."""
        return list(self.devices) == ["host"]


def with_overrides(base: BenchOptions, overrides: dict[str, Any]) -> BenchOptions:
    """Give `base` with the given (non-None) fields replaced; unknown keys are an error."""
    names = {f.name for f in fields(BenchOptions)}
    unknown = set(overrides) - names
    if unknown:
        raise KeyError(f"unknown bench option(s): {', '.join(sorted(unknown))}")
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def plan_cases(
    models: Sequence[str],
    device_fps: Sequence[str],
    threads: Sequence[int],
    *,
    backend: str = "arm",
    power_mode: int = 0,
    warmup: int = 10,
    repeats: int = 30,
    precision: str = "fp32",
    rounds: int = 1,
    backends: dict[str, str] | None = None,
) -> list[BenchCase]:
    """Give the cases of a sweep: for each device, rounds x models x threads, in run order."""
    cases: list[BenchCase] = []
    for fp in device_fps:
        dev_backend = (backends or {}).get(fp, backend)
        for rnd in range(rounds):
            for model in models:
                for t in threads:
                    cases.append(
                        BenchCase(
                            model=model, device=fp, threads=t, power_mode=power_mode, warmup=warmup,
                            repeats=repeats, precision=precision, backend=dev_backend, round=rnd,
                        )
                    )
    return cases


def remaining(cases: Sequence[BenchCase], done_keys: set[str]) -> list[BenchCase]:
    """Give the cases whose key is not yet stored as done (what --resume still runs)."""
    return [c for c in cases if c.key() not in done_keys]
