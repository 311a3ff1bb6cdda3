"""Pure planning of a sweep: which cases run, in which order, on which device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kpmobile.records import BenchCase

DEFAULT_MODELS = ("pp-tinypose-128x96", "picodet-s-192", "picodet-s-320")


@dataclass
class BenchOptions:
    """Everything `kpmobile bench` was asked to do."""

    models: Sequence[str] = DEFAULT_MODELS
    threads: Sequence[int] = (1, 4)
    devices: Sequence[str] = ()  # serials to keep; empty = all attached
    servers: Sequence[str] = ()  # adb servers HOST:PORT; empty = the local one
    no_virtual: bool = False
    runner: Path | None = None  # benchmark_bin for ARM phones
    warmup: int = 10
    repeats: int = 30
    rounds: int = 1
    power_mode: int = 0
    precision: str = "fp32"
    out_dir: Path = Path("kpmobile-out")
    db: Path | None = None
    resume: str | None = None
    case_timeout_s: float = 600.0
    command: str = "kpmobile bench"
    virtual_profile: str = "virtual"
    extra: dict[str, object] = field(default_factory=dict)


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
