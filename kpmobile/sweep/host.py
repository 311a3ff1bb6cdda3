"""Execute a host sweep: every model x batch x backend x threads in its own worker process.

A host sweep shares the store, the case keys (so --resume works the same way) and the tables'
statistics with the phone sweep. Each backend runs in its own process through
kpmobile.backends.run_backend; a backend that cannot run here (no GPU, no TensorRT, a model
with a fixed batch) is stored as "skipped" with its reason. Every measured output is compared
with the paddle-cpu reference on the same input, and the check is stored in the case's extra.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from kpmobile.backends.probe import cuda_gpus
from kpmobile.errors import ConfigError, KpError
from kpmobile.paths import default_db
from kpmobile.records import BenchCase, DeviceInfo, ModelSpec, OutputStat
from kpmobile.store import Store
from kpmobile.sweep.execute import BenchOutcome, Counters, Progress, SilentProgress
from kpmobile.sweep.plan import BenchOptions, remaining

REFERENCE = "paddle-cpu"
HOST_SERIAL = "host"
# The phone sweep's default threads; on the host the seed measures "CPU + MKLDNN" with 1 thread.
HOST_DEFAULT_THREADS = (1,)
DEFAULT_HOST_BACKENDS = ("lite-x86", "paddle-cpu", "paddle-mkldnn", "ort-cpu")


@dataclass
class HostOutcome(BenchOutcome):
    """What a host sweep did: a BenchOutcome plus its skipped cases and divergent outputs."""

    skipped: int = 0
    skips: list[str] = field(default_factory=list)
    divergent: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """Give the lines printed above the host tables."""
        c = self.counters
        lines = [f"run {self.run_id} (host): {self.ok} cases ok, {self.failed} failed, {self.skipped} skipped; "
                 f"converted {c.conversions} (cached {c.conversions_cached})"]
        lines += [f"skipped: {s}" for s in self.skips]
        lines += [f"failed: {f}" for f in self.failures]
        lines += [f"outputs diverge: {d}" for d in self.divergent]
        return lines

    def to_json(self) -> dict[str, Any]:
        """Give the outcome as plain JSON types."""
        data = super().to_json()
        data.update(skipped=self.skipped, skips=self.skips, divergent=self.divergent)
        return data


# the host as a device ---------------------------------------------------------------------
def cpu_model() -> str:
    """Give the host CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> tuple[str, ...]:
    """Give the CUDA GPU names nvidia-smi lists ("NVIDIA H100 80GB HBM3"), without index or UUID."""
    names = []
    for line in cuda_gpus():  # "GPU 0: NVIDIA T4 (UUID: GPU-...)"
        name = line.split(":", 1)[1] if ":" in line else line
        names.append(name.split("(UUID", 1)[0].strip())
    return tuple(names)


def host_fingerprint(hostname: str, cpu: str, gpus: Sequence[str]) -> str:
    """Give the host's stable fingerprint: a hash of hostname, CPU model and GPU names."""
    text = "|".join([hostname, cpu, *gpus])
    return "host-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def host_info() -> DeviceInfo:
    """Give this machine as a DeviceInfo (serial "host"), fingerprinted by host_fingerprint."""
    hostname, cpu, gpus = socket.gethostname(), cpu_model(), gpu_names()
    return DeviceInfo(
        serial=HOST_SERIAL, state="device", server="", brand=hostname, model=cpu,
        device=", ".join(gpus) or None, abi=platform.machine(), soc=cpu, profile="host",
        fingerprint=host_fingerprint(hostname, cpu, gpus),
    )


def host_label(info: DeviceInfo) -> str:
    """Give the host's column label: its CPU model, and its GPU when there is one."""
    return f"{info.model} + {info.device}" if info.device else str(info.model)


# planning -----------------------------------------------------------------------------------
def host_threads(opts: BenchOptions) -> list[int]:
    """Give the thread counts a host sweep uses: 1 unless --threads differs from the phone default."""
    return [int(t) for t in opts.threads] or list(HOST_DEFAULT_THREADS)


def plan_host_cases(models: Sequence[str], device_fp: str, backends: Sequence[str], batches: Sequence[int],
                    threads: Sequence[int], *, warmup: int, repeats: int, rounds: int = 1) -> list[BenchCase]:
    """Give a host sweep's cases in run order: per round, model and batch, the reference backend first."""
    ordered = sorted(backends, key=lambda b: b != REFERENCE)
    cases: list[BenchCase] = []
    for rnd in range(rounds):
        for model in models:
            for batch in batches:
                for backend in ordered:
                    for t in threads:
                        cases.append(BenchCase(
                            model=model, device=device_fp, threads=t, warmup=warmup, repeats=repeats,
                            precision=backend_info(backend).precision, backend=backend, round=rnd,
                            batch=batch,
                        ))
    return cases


def _check_backends(names: Sequence[str]) -> list[str]:
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


def _plan_or_resume(opts: BenchOptions, store: Store, specs: dict[str, ModelSpec], info: DeviceInfo,
                    backends: list[str], progress: Progress) -> tuple[str, list[BenchCase]]:
    fp = info.fingerprint or HOST_SERIAL
    if opts.resume:
        run = store.run(opts.resume)
        if run.plan.get("kind") != "host":
            raise ConfigError(f"run {opts.resume} is not a host run", "resume it without --device host")
        cases = [BenchCase(**c) for c in run.plan.get("cases", [])]
        if {c.device for c in cases} - {fp}:
            raise ConfigError(f"run {opts.resume} was measured on another host",
                              "resume it on the machine that started it, or start a new run")
        return run.id, cases
    threads = host_threads(opts)
    batches = [int(b) for b in opts.batches] or [1]
    cases = plan_host_cases(list(specs), fp, backends, batches, threads, warmup=opts.warmup,
                            repeats=opts.repeats, rounds=opts.rounds)
    plan = {
        "kind": "host",
        "cases": [c.__dict__ for c in cases],
        "models": {n: {"display": s.display, "input_shape": list(s.input_shape), "task": s.task,
                       "published": dict(s.published), "complexity": _complexity(s, progress)}
                   for n, s in specs.items()},
        "devices": {fp: {"serial": HOST_SERIAL, "label": host_label(info), "profile": "host", "soc": info.soc,
                         "abi": info.abi, "model": info.model, "hostname": info.brand, "gpus": info.device,
                         # Other work on the machine skews host latencies; keep what it was at the start.
                         "cpus": os.cpu_count(), "load_avg": round(os.getloadavg()[0], 2)}},
        "threads": threads,
        "batches": batches,
        "backends": backends,
        "reference": REFERENCE,
    }
    return store.new_run(opts.command, plan), cases


# running ------------------------------------------------------------------------------------
@dataclass
class _Artifacts:
    """Per-model files the backends run: the Paddle model, its x86 .nb and its ONNX export."""

    model_dirs: dict[str, Path]
    model_hashes: dict[str, str]
    nb: dict[str, Path] = field(default_factory=dict)
    onnx: dict[str, Path] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, engine) -> conversion key
    errors: dict[tuple[str, str], str] = field(default_factory=dict)


def _convert(art: _Artifacts, model: str, engine: str, counters: Counters, progress: Progress) -> None:
    """Convert `model` for `engine` once ("lite" -> x86 .nb, "ort" -> ONNX), through the zoo's caches."""
    from kpmobile.zoo.convert import convert_nb, convert_onnx

    if engine == "paddle" or (model, engine) in art.keys or (model, engine) in art.errors:
        return
    try:
        conv = convert_nb(art.model_dirs[model], "x86") if engine == "lite" else convert_onnx(art.model_dirs[model])
    except KpError as exc:
        art.errors[(model, engine)] = exc.one_line()
        progress.note(f"{model}: {'x86 .nb' if engine == 'lite' else 'ONNX'} conversion failed: {exc.one_line()}")
        return
    if conv.cached:
        counters.add(conversions_cached=1)
    else:
        counters.add(conversions=1)
    kind = "x86 .nb" if engine == "lite" else "ONNX"
    progress.note(f"{model} -> {kind}: {'cached' if conv.cached else 'converted'}")
    (art.nb if engine == "lite" else art.onnx)[model] = conv.path
    art.keys[(model, engine)] = conv.key


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

    def __init__(self, store: Store, run_id: str) -> None:
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
        for row in self.store.cases(self.run_id, status="ok"):  # resumed: the reference ran earlier
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


def check_json(result: BackendResult, reference: BackendResult | str) -> dict[str, Any]:
    """Give the output check of `result` against the reference as stored in a case's extra["check"]."""
    if isinstance(reference, str):
        return {"reference": REFERENCE, "ok": None, "detail": reference}
    if result.backend == REFERENCE and result.output_digest == reference.output_digest:
        return {"reference": REFERENCE, "ok": True, "max_abs": 0.0, "max_rel": 0.0, "detail": "the reference"}
    atol, rtol = tolerance_for(result.backend)
    check = compare_outputs(reference, result, atol, rtol)
    return {"reference": REFERENCE, "ok": check.ok, "max_abs": check.max_abs, "max_rel": check.max_rel,
            "atol": check.atol, "rtol": check.rtol, "detail": check.detail}


def run_host_bench(opts: BenchOptions, progress: Progress | None = None) -> HostOutcome:
    """Run (or resume) a host sweep and give what it did; every case is stored when it ends."""
    from kpmobile.zoo.build import ensure_model, model_hash
    from kpmobile.zoo.catalogue import resolve

    progress = progress or SilentProgress()
    backends = _check_backends(opts.backends)
    store = Store(opts.db or default_db())
    counters = Counters()
    info = host_info()
    try:
        # A resumed run measures the models of its plan, whatever --models says now.
        models = list(store.run(opts.resume).plan.get("models", {})) if opts.resume else list(opts.models)
        specs = {spec.name: spec for spec in (resolve(m) for m in models)}
        dirs: dict[str, Path] = {}
        for name, spec in specs.items():
            progress.note(f"model {name}")
            dirs[name] = ensure_model(spec)
        art = _Artifacts(dirs, {n: model_hash(d) for n, d in dirs.items()})
        store.upsert_device(info)
        run_id, cases = _plan_or_resume(opts, store, specs, info, backends, progress)
        outcome = HostOutcome(run_id, store.path, opts.out_dir / run_id, counters)
        status = "complete"
        try:
            _execute(store, run_id, cases, specs, art, opts, counters, progress)
        except KeyboardInterrupt:
            status = "interrupted"
            outcome.interrupted = True
            raise
        finally:
            _finish(store, outcome, status)
        return outcome
    finally:
        store.close()


def _execute(store: Store, run_id: str, cases: list[BenchCase], specs: dict[str, ModelSpec], art: _Artifacts,
             opts: BenchOptions, counters: Counters, progress: Progress) -> None:
    todo = remaining(cases, store.done_keys(run_id))
    progress.start(len(todo), f"run {run_id}: {len(todo)} host cases")
    refs = _References(store, run_id)
    reasons: dict[str, str | None] = {}
    for case in todo:
        label = f"{case.model} {case.backend} bs={case.batch} {case.threads}T"
        if case.backend not in reasons:
            reasons[case.backend] = available(case.backend)
            if reasons[case.backend]:
                progress.note(f"{case.backend} skipped: {reasons[case.backend]}")
        reason = reasons[case.backend]
        if reason is not None:
            _store(store, run_id, case, art, status="skipped", error=reason)
            progress.advance(f"{label}: skipped")
            continue
        if opts.cooldown_s > 0:
            time.sleep(opts.cooldown_s)
        _run_case(store, run_id, case, specs[case.model], art, refs, opts, counters, progress)
        progress.advance(label)


def _run_case(store: Store, run_id: str, case: BenchCase, spec: ModelSpec, art: _Artifacts, refs: _References,
              opts: BenchOptions, counters: Counters, progress: Progress) -> None:
    engine = BACKENDS[case.backend].engine
    _convert(art, case.model, engine, counters, progress)
    if (case.model, engine) in art.errors:
        _store(store, run_id, case, art, status="failed", error=art.errors[(case.model, engine)])
        return
    model_dir = art.model_dirs[case.model]
    fixed = fixed_batch(model_dir)
    if fixed is not None and fixed != case.batch:
        # Lite aborts in a reshape on such a model instead of saying so; skip every backend alike.
        reason = (f"model exported with fixed batch {fixed}, batch {case.batch} needs a dynamic batch dim "
                  f"(export with InputSpec([None, {', '.join(str(d) for d in spec.input_shape[1:])}]))")
        _store(store, run_id, case, art, status="skipped", error=reason)
        return
    try:
        result = run_backend(model_dir, case.backend, spec.input_shape, batch=case.batch, threads=case.threads,
                             warmup=case.warmup, repeats=case.repeats, nb_path=art.nb.get(case.model),
                             onnx_path=art.onnx.get(case.model), timeout_s=opts.case_timeout_s)
    except BackendUnavailable as exc:
        progress.note(f"{case.model} {case.backend} bs={case.batch} skipped: {exc.reason}")
        _store(store, run_id, case, art, status="skipped", error=exc.reason)
        return
    except KpError as exc:
        _store(store, run_id, case, art, status="failed", error=exc.one_line())
        return
    if case.backend == REFERENCE:
        refs.add(case.model, case.batch, result)
    reference = refs.get(case.model, case.batch, model_dir, spec.input_shape, opts.case_timeout_s)
    check = check_json(result, reference)
    if check["ok"] is False:
        progress.note(f"{case.model} {case.backend} bs={case.batch}: outputs diverge ({check['detail']})")
    numbers = {"avg_ms": result.avg_ms, "min_ms": result.min_ms, "max_ms": result.max_ms,
               "first_ms": result.first_ms, "init_ms": result.init_ms}
    extra = {"fps_mean": result.fps_mean, "fps_std": result.fps_std, "std_ms": result.std_ms,
             "version": result.version, "device": result.device, "notes": list(result.notes), "check": check}
    _store(store, run_id, case, art, status="ok", numbers=numbers, record=result.to_json(), extra=extra,
           runner_version=result.version)


def _store(store: Store, run_id: str, case: BenchCase, art: _Artifacts, *, status: str, error: str | None = None,
           numbers: dict[str, float | None] | None = None, record: dict[str, Any] | None = None,
           extra: dict[str, Any] | None = None, runner_version: str | None = None) -> None:
    engine = BACKENDS[case.backend].engine
    store.add_case(run_id, case, serial=HOST_SERIAL, status=status, error=error, numbers=numbers, record=record,
                   extra=extra, model_hash=art.model_hashes.get(case.model),
                   artifact_hash=art.keys.get((case.model, engine)) or art.model_hashes.get(case.model),
                   runner=case.backend, runner_version=runner_version)


def _finish(store: Store, outcome: HostOutcome, status: str) -> None:
    rows = store.cases(outcome.run_id)
    outcome.ok = sum(1 for r in rows if r.status == "ok")
    outcome.failed = sum(1 for r in rows if r.status == "failed")
    outcome.skipped = sum(1 for r in rows if r.status == "skipped")
    name = "{r.model} {r.backend} bs={r.batch} {r.threads}T"
    outcome.failures = [f"{name.format(r=r)}: {r.error}" for r in rows if r.status == "failed"]
    skipped: dict[str, tuple[list[str], list[str]]] = {}  # reason -> (backends, models x batches)
    for r in rows:
        if r.status == "skipped":
            backends, where = skipped.setdefault(str(r.error), ([], []))
            item = f"{r.model} bs={r.batch}"
            if r.backend not in backends:
                backends.append(r.backend)
            if item not in where:
                where.append(item)
    outcome.skips = [f"{', '.join(b)} on {', '.join(w[:3])}{', ...' if len(w) > 3 else ''}: {reason}"
                     for reason, (b, w) in skipped.items()]
    outcome.divergent = [f"{name.format(r=r)}: {r.extra['check'].get('detail')}" for r in rows
                         if r.status == "ok" and r.extra.get("check", {}).get("ok") is False]
    if outcome.failed and status == "complete":
        status = "partial"
    plan = store.run(outcome.run_id).plan
    plan["counters"] = outcome.to_json()
    store.set_plan(outcome.run_id, plan)
    store.finish_run(outcome.run_id, status)
