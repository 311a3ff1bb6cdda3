"""Pure planning of a sweep: which cases run, in which order, on which device."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kpmobile.records import BenchCase, RunPlan

DEFAULT_MODELS = ("pp-tinypose-128x96", "picodet-s-192", "picodet-s-320")


@dataclass
class BenchOptions:
    """Everything `kpmobile bench` was asked to do (sweep file, then command-line flags on top)."""

    models: Sequence[str] = DEFAULT_MODELS
    threads: Sequence[int] = ()  # empty: (1, 4) on phones, 1 on the host
    devices: Sequence[str] = ()  # serials or fingerprints to keep, or "host"; empty = all attached phones
    profiles: Sequence[str] = ()  # keep only phones matching these profiles
    servers: Sequence[str] = ()  # adb servers HOST:PORT; empty = the local one
    no_virtual: bool = False
    runner: Path | None = None  # benchmark_bin for ARM phones
    warmup: int = 10
    repeats: int = 30
    rounds: int = 3  # rounds give each cell a spread; --quick asks for 1
    shuffle_seed: int = 0  # each round runs its cases in an order shuffled with this seed and the round
    power_mode: int = 0
    power_modes: Sequence[int] = ()  # several power modes to sweep; empty = (power_mode,)
    precision: str = "fp32"
    cooldown_s: float = 0.0  # fixed rest before each case
    thermal_wait_s: float = 120.0  # longest wait for the hottest zone to fall below the profile's limit
    core_sample_s: float = 0.2  # interval of /proc/PID/stat samples while the runner runs
    backends: Sequence[str] = ()  # host backends (with devices == ["host"])
    batches: Sequence[int] = (1,)
    pipelines: Sequence[str] = ()  # "picodet-s-192+pp-tinypose-128x96"
    persons: Sequence[int] = (1,)
    pipeline_runner: Path | None = None  # PaddleDetection lite `main` for ARM phones
    out_dir: Path = Path("kpmobile-out")
    db: Path | None = None
    resume: str | None = None
    case_timeout_s: float = 600.0
    allow_oversubscribe: bool = False  # threads above a phone's core count
    no_wait: bool = False  # a phone (or, host sweeps, the host) leased by another sweep: refuse, not wait
    command: str = "kpmobile bench"
    virtual_profile: str = "virtual"
    virtual: str | None = None  # "x86" | "arm": use that virtual phone only (arm: kirin980 under qemu)
    memory: bool = False  # one extra runner invocation per cell with --enable_memory_profile=true
    config: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    energy: bool = False  # sample the battery around each case (issue 17)
    energy_idle_s: float = 3.0  # idle baseline before each case
    op_profile: bool = False  # one extra invocation per cell with a profiling runner
    op_runner: Path | None = None  # the LITE_WITH_PROFILE benchmark_bin (default: --runner)

    @property
    def phone_threads(self) -> tuple[int, ...]:
        """Give the thread counts of a phone sweep: the ones asked for, else 1 and 4 (the seed's)."""
        return tuple(self.threads) or (1, 4)

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
    power_modes: Sequence[int] = (),
    pipelines: Sequence[str] = (),
    persons: Sequence[int] = (1,),
    pipeline_devices: Sequence[str] | None = None,
    shuffle_seed: int | None = None,
) -> list[BenchCase]:
    """Give the cases of a sweep: for each device, rounds x (models, then pipelines x persons) x
    power modes x threads, in run order (a round ends before the next begins, so drift shows).

    With `shuffle_seed`, each round runs its cases in an order shuffled by random.Random(f"{seed}:{round}"):
    the same order on every device and in every sweep of that seed, a different one each round, so that a
    case never sits in the same place (after the same neighbour) in every round.
    Pipelines run only on `pipeline_devices` (None: every device); elsewhere they are composed
    from the single-model cases at report time.
    """
    modes = list(power_modes) or [power_mode]
    piped = set(device_fps if pipeline_devices is None else pipeline_devices)
    cases: list[BenchCase] = []
    for fp in device_fps:
        dev_backend = (backends or {}).get(fp, backend)
        for rnd in range(rounds):
            runs: list[tuple[str, str | None, int | None]] = [(m, None, None) for m in models]
            if fp in piped:
                runs += [(p, p, n) for p in pipelines for n in persons]
            batch = [BenchCase(model=model, device=fp, threads=t, power_mode=mode, warmup=warmup, repeats=repeats,
                               precision=precision, backend=dev_backend, round=rnd, pipeline=pipe, persons=n)
                     for model, pipe, n in runs for mode in modes for t in threads]
            if shuffle_seed is not None:
                shuffle_round(batch, shuffle_seed, rnd)
            cases += batch
    return cases


def shuffle_round(cases: list[BenchCase], seed: int, rnd: int) -> None:
    """Shuffle one round's cases in place, by random.Random(f"{seed}:{round}"): the same order for the same
    seed and round on every device and in every sweep, a different one each round."""
    random.Random(f"{seed}:{rnd}").shuffle(cases)


def split_pipeline(pipeline: str) -> tuple[str, str]:
    """Give (detector, pose model) of a pipeline written "DET+POSE"; ValueError when malformed."""
    det, plus, pose = pipeline.partition("+")
    if not plus or not det.strip() or not pose.strip() or "+" in pose:
        raise ValueError(f"pipeline '{pipeline}' is not DETECTOR+POSE, e.g. picodet-s-192+pp-tinypose-128x96")
    return det.strip(), pose.strip()


def pipeline_models(models: Sequence[str], pipelines: Sequence[str]) -> list[str]:
    """Give the models of a sweep: the listed ones, then each pipeline's detector and pose model not listed."""
    out = list(models)
    for pipe in pipelines:
        for name in split_pipeline(pipe):
            if name not in out:
                out.append(name)
    return out


def select_profiles(profiles: Sequence[str], device_profiles: dict[str, str | None]) -> list[str]:
    """Give the devices (keys of `device_profiles`: device -> profile name) whose profile is listed.

    An empty `profiles` keeps every device.
    """
    if not profiles:
        return list(device_profiles)
    wanted = {p.lower() for p in profiles}
    return [dev for dev, prof in device_profiles.items() if (prof or "").lower() in wanted]


def remaining(cases: Sequence[BenchCase], done_keys: set[str]) -> list[BenchCase]:
    """Give the cases whose key is not yet stored as done (what --resume still runs)."""
    return [c for c in cases if c.key() not in done_keys]


def check_threads(threads: Sequence[int], cores: int, phone: str, allow: bool) -> str | None:
    """Give a warning when a thread count exceeds the phone's `cores` and `allow` is set; raise
    ConfigError when it is not set. None when every count fits (or the core count is unknown: 0)."""
    from kpmobile.errors import ConfigError

    over = sorted({t for t in threads if cores and t > cores})
    if not over:
        return None
    text = f"{','.join(map(str, over))} threads on phone {phone}, which has {cores} cores"
    if not allow:
        raise ConfigError(text, "lower --threads, or pass --allow-oversubscribe to measure it anyway")
    return f"oversubscribed: {text}"


def resumed_options(opts: BenchOptions, plan: RunPlan) -> BenchOptions:
    """Give the options of a resumed run: its stored models, pipelines and settings; servers and
    runners given now win over the stored ones."""
    stored = plan.options
    runner = opts.runner or (Path(stored.runner) if stored.runner else None)
    main = opts.pipeline_runner or (Path(stored.pipeline_runner) if stored.pipeline_runner else None)

    def number(value: float | None, default: float) -> float:
        return float(default if value is None else value)

    return replace(
        opts,
        models=list(plan.models) or list(opts.models),
        pipelines=list(stored.pipelines or opts.pipelines),
        persons=list(stored.persons or opts.persons),
        servers=list(opts.servers) or list(stored.servers),
        cooldown_s=number(stored.cooldown_s, opts.cooldown_s),
        thermal_wait_s=number(stored.thermal_wait_s, opts.thermal_wait_s),
        core_sample_s=number(stored.core_sample_s, opts.core_sample_s),
        runner=runner,
        pipeline_runner=main,
        memory=opts.memory or stored.memory,
    )
