"""Execute a host sweep: every model x batch x backend x threads in its own worker process.

A host sweep shares the store, the case keys (so --resume works the same way) and the tables'
statistics with the phone sweep. Each backend runs in its own process through
kpmobile.backends.run_backend; a backend that cannot run here (no GPU, no TensorRT, a model
with a fixed batch) is stored as "skipped" with its reason. Every measured output is compared
with the paddle-cpu reference on the same input, and the check is stored in the case's extra.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kpmobile.backends import (
    BACKENDS,
    BackendResult,
    BackendUnavailable,
    available,
    backend_info,
    compare_outputs,
    run_backend,
    tolerance_for,
)
from kpmobile.errors import ConfigError, KpError
from kpmobile.records import (
    BenchCase,
    CaseExtra,
    DeviceInfo,
    HostFigures,
    ModelSpec,
    OutputCheck,
    OutputStat,
    PlanDevice,
    PlanModel,
    RunPlan,
)
from kpmobile.store import Store
from kpmobile.sweep.case import CaseResult, Counters, Numbers, Progress
from kpmobile.sweep.discover import HOST_SERIAL, host_fingerprint, host_info, host_label
from kpmobile.sweep.plan import BenchOptions, shuffle_round
from kpmobile.sweep.prepare import HostArtifacts, build_models

REFERENCE = "paddle-cpu"
# The phone sweep's default threads; on the host the seed measures "CPU + MKLDNN" with 1 thread.
HOST_DEFAULT_THREADS = (1,)
DEFAULT_HOST_BACKENDS = ("lite-x86", "paddle-cpu", "paddle-mkldnn", "ort-cpu")

__all__ = ["HOST_SERIAL", "HostExecutor", "host_fingerprint", "host_info", "plan_host_cases"]


# planning -----------------------------------------------------------------------------------
def host_threads(opts: BenchOptions) -> list[int]:
    """Give the thread counts a host sweep uses: 1 unless --threads differs from the phone default."""
    return [int(t) for t in opts.threads] or list(HOST_DEFAULT_THREADS)


def plan_host_cases(models: Sequence[str], device_fp: str, backends: Sequence[str], batches: Sequence[int],
                    threads: Sequence[int], *, warmup: int, repeats: int, rounds: int = 1,
                    shuffle_seed: int | None = None) -> list[BenchCase]:
    """Give a host sweep's cases in run order: per round, model and batch, the reference backend first.

    With `shuffle_seed`, each round's cases run in an order shuffled as a phone sweep's are
    (random.Random(f"{seed}:{round}")), except that a (model, batch)'s reference cases still come before
    its other backends' (they take that group's first places in the shuffled order), so that every
    output check has its reference from the run itself.
    """
    ordered = sorted(backends, key=lambda b: b != REFERENCE)
    cases: list[BenchCase] = []
    for rnd in range(rounds):
        batch_cases = [BenchCase(model=model, device=device_fp, threads=t, warmup=warmup, repeats=repeats,
                                 precision=backend_info(backend).precision, backend=backend, round=rnd, batch=batch)
                       for model in models for batch in batches for backend in ordered for t in threads]
        if shuffle_seed is not None:
            shuffle_round(batch_cases, shuffle_seed, rnd)
            batch_cases = _reference_first(batch_cases)
        cases += batch_cases
    return cases


def _reference_first(cases: list[BenchCase]) -> list[BenchCase]:
    """Give cases with each (model, batch)'s reference cases moved into that group's first places."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault((c.model, c.batch), []).append(i)
    out = list(cases)
    for places in groups.values():
        members = [cases[i] for i in places]
        members.sort(key=lambda c: c.backend != REFERENCE)  # stable: the others keep their shuffled order
        for i, c in zip(places, members):
            out[i] = c
    return out


def check_backends(names: Sequence[str]) -> list[str]:
    """Give the host backends to run (the default ones when none are named); ConfigError on an unknown one."""
    out = list(dict.fromkeys(names)) or list(DEFAULT_HOST_BACKENDS)
    for name in out:
        backend_info(name)  # ConfigError naming the known backends
    return out


def _complexity(spec: ModelSpec, progress: Progress) -> dict[str, Any]:
    from kpmobile.zoo.complexity import model_info

    try:
        info = model_info(spec, batch=1)
    except KpError as exc:
        progress.note(f"{spec.name}: no complexity figures ({exc.one_line()})")
        return {"error": exc.one_line()}
    return {k: info.get(k) for k in ("params", "trainable_params", "flops", "input_shape", "flops_counter")}


def fixed_batch(model_dir: Path) -> int | None:
    """Give the batch an exported model's image input is fixed to, or None when it is dynamic or unknown."""
    from kpmobile.zoo.program import ProgramFormatError, read_program_io

    try:
        io = read_program_io(Path(model_dir) / "model.pdmodel")
    except (OSError, ProgramFormatError):
        return None
    image = next((v for v in io.inputs if v.name == "image"), io.inputs[0] if io.inputs else None)
    if image is None or not image.shape or image.shape[0] <= 0:
        return None
    return int(image.shape[0])


def result_from_record(record: dict[str, Any]) -> BackendResult:
    """Give the BackendResult stored as a case's record (BackendResult.to_json)."""
    return BackendResult(
        backend=str(record["backend"]), batch=int(record["batch"]), threads=int(record["threads"]),
        times_ms=tuple(float(t) for t in record["times_ms"]), avg_ms=float(record["avg_ms"]),
        min_ms=float(record["min_ms"]), max_ms=float(record["max_ms"]), std_ms=float(record["std_ms"]),
        fps_mean=float(record["fps_mean"]), fps_std=float(record["fps_std"]),
        outputs=tuple(OutputStat(tuple(o["shape"]), float(o["mean"]), float(o["std"])) for o in record["outputs"]),
        output_digest=str(record["output_digest"]), version=str(record["version"]),
        notes=tuple(record.get("notes", ())), input_shape=tuple(record.get("input_shape", ())),
        init_ms=record.get("init_ms"), first_ms=record.get("first_ms"), device=str(record.get("device", "")),
        warmup=int(record.get("warmup", 0)),
    )


class _References:
    """The paddle-cpu output of each (model, batch): from this run's cases, or measured once aside."""

    def __init__(self, store: Store | None, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.results: dict[tuple[str, int], BackendResult] = {}
        self.reasons: dict[tuple[str, int], str] = {}

    def add(self, model: str, batch: int, result: BackendResult) -> None:
        """Remember a reference result."""
        self.results.setdefault((model, batch), result)

    def get(self, model: str, batch: int, model_dir: Path, input_shape: Sequence[int],
            timeout_s: float) -> BackendResult | str:
        """Give the reference result of (model, batch), or the reason there is none."""
        key = (model, batch)
        if key in self.results and Path(self.results[key].output_digest).is_file():
            return self.results[key]
        if key in self.reasons:
            return self.reasons[key]
        for row in self.store.cases(self.run_id, status="ok") if self.store else ():  # resumed: it ran earlier
            if row.model == model and row.batch == batch and row.backend == REFERENCE and row.record:
                stored = result_from_record(row.record)
                if Path(stored.output_digest).is_file():
                    self.results[key] = stored
                    return stored
        try:  # paddle-cpu was not asked for (or its output is gone): one untimed-ish run for the check
            self.results[key] = run_backend(model_dir, REFERENCE, input_shape, batch=batch, warmup=0, repeats=1,
                                            timeout_s=timeout_s)
            return self.results[key]
        except KpError as exc:
            self.reasons[key] = f"no {REFERENCE} reference: {exc.one_line()}"
            return self.reasons[key]


def output_check(result: BackendResult, reference: BackendResult | str) -> OutputCheck:
    """Give the output check of `result` against the reference (a case's extra "check")."""
    if isinstance(reference, str):
        return OutputCheck(None, reference, reference=REFERENCE)
    if result.backend == REFERENCE and result.output_digest == reference.output_digest:
        return OutputCheck(True, "the reference", max_abs=0.0, max_rel=0.0, reference=REFERENCE)
    atol, rtol = tolerance_for(result.backend)
    check = compare_outputs(reference, result, atol, rtol)
    return OutputCheck(check.ok, check.detail, rtol=check.rtol, max_rel=check.max_rel, max_abs=check.max_abs,
                       atol=check.atol, reference=REFERENCE)


class HostExecutor:
    """Runs cases on this machine: one backend worker process per case, in the calling thread."""

    kind = "host"
    parallel = False  # Ctrl-C then reaches the worker's subprocess call, which stops the worker

    def __init__(self, opts: BenchOptions, specs: dict[str, ModelSpec], counters: Counters,
                 progress: Progress, store: Store | None = None) -> None:
        self.opts, self.specs, self.counters, self.progress, self.store = opts, specs, counters, progress, store
        self.backends = check_backends(opts.backends)
        self.info = host_info()
        self.fp = self.info.fingerprint or HOST_SERIAL
        self.art: HostArtifacts | None = None
        self.refs = _References(store, "")
        self._reasons: dict[str, str | None] = {}

    def plan(self) -> RunPlan:
        """Give a new host run's plan: model x batch x backend x threads per round, the reference first."""
        o = self.opts
        threads = host_threads(o)
        batches = [int(b) for b in o.batches] or [1]
        cases = plan_host_cases(list(self.specs), self.fp, self.backends, batches, threads, warmup=o.warmup,
                                repeats=o.repeats, rounds=o.rounds, shuffle_seed=o.shuffle_seed)
        i = self.info
        device = PlanDevice(serial=HOST_SERIAL, label=host_label(i), profile="host", soc=i.soc, abi=i.abi,
                            model=i.model, hostname=i.brand, gpus=i.device,
                            # Other work on the machine skews host latencies; keep what it was at the start.
                            cpus=os.cpu_count(), load_avg=round(os.getloadavg()[0], 2))
        return RunPlan(
            kind="host", cases=tuple(cases),
            models={n: PlanModel(display=s.display, input_shape=tuple(s.input_shape), task=s.task,
                                 published=dict(s.published), complexity=_complexity(s, self.progress))
                    for n, s in self.specs.items()},
            devices={self.fp: device}, threads=tuple(threads), rounds=o.rounds, batches=tuple(batches),
            backends=tuple(self.backends), reference=REFERENCE, shuffle_seed=o.shuffle_seed,
        )

    def resume(self, plan: RunPlan) -> RunPlan:
        """Give the resumed plan; fail when it is not a host run or was measured on another host."""
        if plan.kind != "host":
            raise ConfigError(f"run {self.opts.resume} is not a host run", "resume it without --device host")
        if {c.device for c in plan.cases} - {self.fp}:
            raise ConfigError(f"run {self.opts.resume} was measured on another host",
                              "resume it on the machine that started it, or start a new run")
        return plan

    def devices(self) -> Sequence[DeviceInfo]:
        """Give the host's identity."""
        return [self.info]

    def prepare(self, run_id: str, out_dir: Path) -> None:
        """Build the models; conversions happen on first use by a backend."""
        if self.opts.precision != "fp32":
            # Each host backend has its own precision; a sweep-wide fp16 would silently measure fp32.
            raise ConfigError(f"precision = \"{self.opts.precision}\" applies to phone sweeps only",
                              "on the host pick an fp16 backend (e.g. --backend paddle-trt-fp16), or drop precision")
        self.art = HostArtifacts(build_models(self.specs, self.progress))
        self.refs = _References(self.store, run_id)

    def run(self, case: BenchCase, stop: threading.Event) -> CaseResult:
        """Give the result of one case: skipped when its backend cannot run here, else measured and checked."""
        label = f"{case.model} {case.backend} bs={case.batch} {case.threads}T"
        if case.backend not in self._reasons:
            self._reasons[case.backend] = available(case.backend)
            if self._reasons[case.backend]:
                self.progress.note(f"{case.backend} skipped: {self._reasons[case.backend]}")
        reason = self._reasons[case.backend]
        if reason is not None:
            return self._result(case, "skipped", error=reason, label=f"{label}: skipped")
        if self.opts.cooldown_s > 0:
            time.sleep(self.opts.cooldown_s)
        return self._measure(case, label)

    def _measure(self, case: BenchCase, label: str) -> CaseResult:
        assert self.art is not None, "prepare() runs before the cases"
        spec, engine = self.specs[case.model], BACKENDS[case.backend].engine
        failed = self.art.convert(case.model, engine, self.counters, self.progress)
        if failed is not None:
            return self._result(case, "failed", error=failed, label=label)
        model_dir = self.art.models.dirs[case.model]
        fixed = fixed_batch(model_dir)
        if fixed is not None and fixed != case.batch:
            # Lite aborts in a reshape on such a model instead of saying so; skip every backend alike.
            reason = (f"model exported with fixed batch {fixed}, batch {case.batch} needs a dynamic batch dim "
                      f"(export with InputSpec([None, {', '.join(str(d) for d in spec.input_shape[1:])}]))")
            return self._result(case, "skipped", error=reason, label=label)
        try:
            result = run_backend(model_dir, case.backend, spec.input_shape, batch=case.batch, threads=case.threads,
                                 warmup=case.warmup, repeats=case.repeats, nb_path=self.art.nb.get(case.model),
                                 onnx_path=self.art.onnx.get(case.model), timeout_s=self.opts.case_timeout_s)
        except BackendUnavailable as exc:
            self.progress.note(f"{case.model} {case.backend} bs={case.batch} skipped: {exc.reason}")
            return self._result(case, "skipped", error=exc.reason, label=label)
        except KpError as exc:
            return self._result(case, "failed", error=exc.one_line(), label=label)
        if case.backend == REFERENCE:
            self.refs.add(case.model, case.batch, result)
        reference = self.refs.get(case.model, case.batch, model_dir, spec.input_shape, self.opts.case_timeout_s)
        check = output_check(result, reference)
        if check.ok is False:
            self.progress.note(f"{case.model} {case.backend} bs={case.batch}: outputs diverge ({check.detail})")
        extra = CaseExtra(check=check, host=HostFigures(result.fps_mean, result.fps_std, result.std_ms,
                                                        result.version, result.device, tuple(result.notes)))
        numbers = Numbers(result.avg_ms, result.min_ms, result.max_ms, result.first_ms, result.init_ms)
        return self._result(case, "ok", numbers=numbers, record=result.to_json(), extra=extra,
                            runner_version=result.version, label=label)

    def _result(self, case: BenchCase, status: str, *, label: str, error: str | None = None,
                numbers: Numbers | None = None, record: dict[str, Any] | None = None,
                extra: CaseExtra | None = None, runner_version: str | None = None) -> CaseResult:
        engine = BACKENDS[case.backend].engine
        hashes = self.art.models.hashes if self.art is not None else {}
        keys = self.art.keys if self.art is not None else {}
        return CaseResult(case, HOST_SERIAL, status, error=error, numbers=numbers, record=record, extra=extra,
                          model_hash=hashes.get(case.model),
                          artifact_hash=keys.get((case.model, engine)) or hashes.get(case.model),
                          runner=case.backend, runner_version=runner_version, label=label)

    def interrupt(self) -> None:
        """Nothing to stop: the worker's subprocess call ends with the KeyboardInterrupt."""

    def case_name(self, case: BenchCase, serial: str) -> str:
        """Give a failed case's name in the summary."""
        return f"{case.model} {case.backend} bs={case.batch} {case.threads}T"

    def resume_flags(self) -> str:
        """Give the flag that resumes a host run."""
        return " --device host"
