"""PhoneExecutor: each case is one device round trip (cool-down, runner under watch, result back), parsed here."""

from __future__ import annotations

import hashlib
import shlex
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kpmobile.checks import check_output_stats, stats_tolerance
from kpmobile.devices import casescript, telemetry
from kpmobile.devices.android import RawShellResult, safe_child
from kpmobile.devices.energy import Sampler
from kpmobile.devices.framing import Framer
from kpmobile.errors import ConfigError, DeviceError, KpError, ParseError
from kpmobile.paths import DEVICE_DIR
from kpmobile.records import (
    BenchCase,
    CaseExtra,
    DeviceInfo,
    EchoDifference,
    MemoryFigures,
    ModelSpec,
    OutputCheck,
    PlanModel,
    PlanOptions,
    PlanPipeline,
    RunPlan,
    RunRecord,
)
from kpmobile.runners import benchmark_bin as bbin
from kpmobile.runners.parsers import parse_log
from kpmobile.sweep import conditions, costs, faults
from kpmobile.sweep import pipeline as pipe
from kpmobile.sweep.case import CaseResult, Counters, Numbers, Progress
from kpmobile.sweep.discover import Discovery, Target, device_labels
from kpmobile.sweep.plan import BenchOptions, plan_cases, split_pipeline
from kpmobile.sweep.prepare import (
    Models,
    Staged,
    build_models,
    file_md5,
    main_case_files,
    push_files,
    stage_phones,
)


class PhoneExecutor:
    """Runs cases on phones: one worker thread per phone, one runner invocation per case."""

    kind = "phone"
    parallel = True

    def __init__(self, opts: BenchOptions, found: Discovery, specs: dict[str, ModelSpec], counters: Counters,
                 progress: Progress) -> None:
        self.opts, self.specs, self.counters, self.progress = opts, specs, counters, progress
        self.targets = {t.fp: t for t in found.targets}
        self.skipped = found.skipped
        self.models = Models(specs, {}, {})
        self.staged: dict[str, Staged] = {}
        self.run_id = ""
        self.out_dir = Path()
        self._pushed: dict[str, str | None] = {}  # fingerprint -> why its files could not be pushed
        self._push_lock = threading.Lock()
        self._active: dict[str, str] = {}  # fingerprint -> pid file of its running case

    # planning -------------------------------------------------------------------------------
    def plan(self) -> RunPlan:
        """Give a new run's plan: every model (and pipeline) x power mode x threads x rounds per phone."""
        o = self.opts
        targets = list(self.targets.values())
        fps = [t.fp for t in targets]
        piped = [t.fp for t in targets if t.pipeline_mode != pipe.MODE_COMPOSED]
        cases = plan_cases(list(self.specs), fps, o.phone_threads, power_mode=o.power_mode, warmup=o.warmup,
                           repeats=o.repeats, precision=o.precision, rounds=o.rounds, shuffle_seed=o.shuffle_seed,
                           backends={t.fp: t.backend for t in targets}, power_modes=o.power_modes,
                           pipelines=o.pipelines, persons=o.persons, pipeline_devices=piped)
        names = device_labels([t.info for t in targets])
        return RunPlan(
            kind="phone", cases=tuple(cases),
            models={n: PlanModel(display=s.display, input_shape=tuple(s.input_shape), task=s.task,
                                 flops=model_flops(s)) for n, s in self.specs.items()},
            devices={t.fp: t.plan_device(names[t.fp]) for t in targets},
            threads=tuple(o.phone_threads), power_modes=tuple(o.power_modes) or (o.power_mode,), rounds=o.rounds,
            shuffle_seed=o.shuffle_seed, skipped=dict(self.skipped),
            pipelines={p: PlanPipeline(*split_pipeline(p), tuple(o.persons)) for p in o.pipelines},
            options=plan_options(o),
        )

    def resume(self, plan: RunPlan) -> RunPlan:
        """Give the resumed plan, with phones skipped at its start that are ready now; fail when one is missing."""
        if plan.kind != "phone":
            raise ConfigError(f"run {self.opts.resume} is a {plan.kind} run", "resume it with --device host")
        plan = faults.adopt_recovered(plan, list(self.targets.values()))
        missing = {c.device for c in plan.cases} - set(self.targets)
        if missing:
            labels = [plan.devices[fp].serial if fp in plan.devices else fp for fp in missing]
            raise DeviceError(f"run {self.opts.resume} needs device(s) {', '.join(labels)}, which are not attached",
                              "attach them (or their adb server via --adb-server) and resume again")
        return plan

    def devices(self) -> Sequence[DeviceInfo]:
        """Give the phones' identities."""
        return [t.info for t in self.targets.values()]

    def prepare(self, run_id: str, out_dir: Path) -> None:
        """Build the models and convert them for each phone (pushing happens in each phone's worker)."""
        self.run_id, self.out_dir = run_id, out_dir
        self.models = build_models(self.specs, self.progress)
        self.staged = stage_phones(list(self.targets.values()), self.models, self.opts.precision,
                                   self.opts.pipelines, self.opts.phone_threads, self.counters, self.progress)

    # running --------------------------------------------------------------------------------
    def run(self, case: BenchCase, stop: threading.Event) -> CaseResult | None:
        """Give the result of one case on its phone, or None when the user cut it off."""
        target = self.targets[case.device]
        why = self._push(target)
        label = case.model if case.pipeline is None else f"{case.pipeline} x{case.persons}"
        label = f"{target.info.serial} {label} {case.threads}T r{case.round}"
        if why is not None:
            return CaseResult(case, target.info.serial, "failed", error=why,
                              model_hash=self.models.hashes.get(case.model), runner=target.runner_name,
                              runner_version=target.runner_version, label=f"{target.info.serial} failed")
        result = self._run_case(case, target, self.staged[target.fp], stop)
        if result is not None and self.opts.op_profile and result.status == "ok" and case.pipeline is None \
                and case.round == 0 and not stop.is_set():
            result = replace(result, op_profile=self._op_profile(case, target))
        return None if result is None else replace(result, label=label)

    def _push(self, target: Target) -> str | None:
        """Give why the phone's files could not be pushed (once per phone), or None."""
        with self._push_lock:
            if target.fp in self._pushed:
                return self._pushed[target.fp]
        why: str | None = None
        try:
            if target.broken:
                raise KpError(target.broken)
            push_files(target, self.staged[target.fp], self.counters, self.progress)
        except KpError as exc:
            why = exc.one_line()
        with self._push_lock:
            self._pushed[target.fp] = why
        return why

    def _push_op_runner(self, target: Target, files: tuple[Path, str]) -> str | None:
        """Push the profiling runner when the phone lacks it; give why it cannot run there, or None."""
        from kpmobile.runners.elf import check_runner_abi

        local, remote = files
        try:
            check_runner_abi(local, target.info.abi or "", target.info.abis)
            if target.phone.md5sums([remote]).get(remote) == file_md5(local):
                self.counters.add(pushes_skipped=1)
                return None
            target.phone.push(local, remote, 0o755)
            self.counters.add(pushes=1)
        except KpError as exc:
            return f"profiling runner: {exc.one_line()}"
        return None

    def _op_profile(self, case: BenchCase, target: Target) -> costs.OpProfileOutcome:
        """Give the cell's extra invocation with the profiling runner (kept apart from the latency rounds)."""
        files = costs.op_runner(self.opts, target)
        if files is None:
            return costs.OpProfileOutcome("failed", error=costs.NO_OP_TIMES_X86)
        why = self._push_op_runner(target, files)
        if why is not None:
            return costs.OpProfileOutcome("failed", error=why)
        idx = hashlib.sha1(case.key().encode()).hexdigest()[:12]
        result = f"{DEVICE_DIR}/results/{self.run_id}/{idx}.ops.txt"
        argv = costs.profile_argv(self._argv(case, target, self.staged[target.fp], result), files[1], result)
        return replace(costs.run_op_profile(target.phone, argv, DEVICE_DIR, self.opts.case_timeout_s),
                       runner=files[0].name)

    def _run_case(self, case: BenchCase, target: Target, staged: Staged, stop: threading.Event) -> CaseResult | None:
        """Give one case's result from ONE device round trip: cool-down, snapshots, sampled runner and
        result file come back as one framed stream (kpmobile.devices.casescript)."""
        idx = hashlib.sha1(case.key().encode()).hexdigest()[:12]
        files = casescript.CaseFiles.beside(DEVICE_DIR, f"{DEVICE_DIR}/results/{self.run_id}/{idx}.txt")
        base = self._base_result(case, target, staged)
        if stop.is_set():
            return None
        argv = self._argv(case, target, staged, files.result)
        framer = Framer()
        cooling = casescript.Cooling(target.thermal_limit_c, self.opts.thermal_wait_s, self.opts.cooldown_s)
        sampler = costs.sampler_for(files.result, self.opts.energy, self.opts.energy_idle_s)
        script = costs.wrap(casescript.case_script(framer, argv, files, target.watched_cores, cooling,
                                                   self.opts.core_sample_s, costs.hooks(sampler)), sampler)
        self._active[target.fp] = files.pid
        trips = target.phone.round_trips
        try:
            # The timeout is the longest silence: the script prints a line per cool-down poll.
            res = target.phone.shell_raw(script, timeout=self.opts.case_timeout_s)
        except DeviceError as exc:
            telemetry.stop_remote(target.phone, files.pid)  # a timed-out runner must not run on
            if stop.is_set():
                return None
            return replace(base, status="failed", error=faults.shell_failure_reason(exc, self.opts.case_timeout_s))
        finally:
            self._active.pop(target.fp, None)
        if stop.is_set():
            return None  # cut off by the user: --resume runs it again
        result = self._finish(case, target, staged, base, res, framer.nonce, target.phone.round_trips - trips, argv,
                              files.result)
        return _with_energy(result, res.stderr.decode("utf-8", "replace"), sampler)

    def _finish(self, case: BenchCase, target: Target, staged: Staged, base: CaseResult, res: RawShellResult,
                nonce: str, trips: int, argv: Sequence[str], remote_result: str) -> CaseResult:
        """Give the result of a case's stream: failed (with why) or ok, the result file kept on disk."""
        stderr = costs.strip_samples(res.stderr.decode("utf-8", "replace"))
        try:
            stream = casescript.parse_case_stream(res.stdout, nonce)
        except ParseError as exc:
            raw = res.stdout.decode("utf-8", "replace") + _stderr_tail(stderr)
            return replace(base, status="failed", error=exc.one_line(), raw_log=raw)
        extra = replace(conditions.from_stream(stream, target.thermal_limit_c, target.expected_cores(case.power_mode)),
                        round_trips=trips, emulated=target.info.emulated)
        stdout = stream.stdout.decode("utf-8", "replace")
        raw = stdout + _stderr_tail(stderr)
        why = _failure(case, res.returncode, stream.returncode, stdout, stderr)
        if why is not None:
            return replace(base, status="failed", error=why, raw_log=raw, extra=extra)
        try:
            rec = self._keep(case, target, stream)
        except (DeviceError, ParseError) as exc:
            return replace(base, status="failed", error=exc.one_line(), raw_log=raw, extra=extra)
        if case.pipeline is None:
            rec, extra = _echo_checked(rec, argv, extra)
            if self.opts.memory and case.round == 0:
                rec, extra, memory_log = self._memory(target, argv, remote_result, rec, extra)
                raw += memory_log
        extra = self._checked(case, staged, rec, extra)
        numbers = Numbers(rec.avg_ms, rec.min_ms, rec.max_ms, rec.first_ms, rec.init_ms)
        # The log's own version ("v2.13-rc") beats the placeholder a phone's runner is known by.
        version = rec.runner_version or base.runner_version
        return replace(base, status="ok", numbers=numbers, record=rec.to_json(), raw_log=raw, extra=extra,
                       runner_version=version)

    def _keep(self, case: BenchCase, target: Target, stream: casescript.CaseStream) -> RunRecord:
        """Give the parsed result file, written under the run's output folder as a pulled one was."""
        if stream.result is None:
            raise DeviceError(f"{target.info.serial}: the runner wrote no result file",
                              "the runner wrote no result file; see the stored raw log")
        name = f"{case.model}-{case.threads}t-p{case.power_mode}-r{case.round}"
        name += f"-x{case.persons}.txt" if case.pipeline else ".txt"
        local = safe_child(self.out_dir / _safe_dir(target.info.serial), name)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(stream.result)
        return parse_log(stream.result.decode("utf-8", "replace"))[-1]

    def _base_result(self, case: BenchCase, target: Target, staged: Staged) -> CaseResult:
        hashes = self.models.hashes
        if case.pipeline is None:
            return CaseResult(case, target.info.serial, "failed", model_hash=hashes.get(case.model),
                              artifact_hash=staged.nb_hash.get(case.model), runner=target.runner_name,
                              runner_version=target.runner_version)
        det, pose = split_pipeline(case.pipeline)
        return CaseResult(case, target.info.serial, "failed", model_hash=f"{hashes.get(det)}+{hashes.get(pose)}",
                          artifact_hash=f"{staged.nb_hash.get(det)}+{staged.nb_hash.get(pose)}",
                          runner=target.pipeline_runner[0], runner_version=target.pipeline_runner[1])

    def _argv(self, case: BenchCase, target: Target, staged: Staged, result: str) -> list[str]:
        if case.pipeline is None:
            return runner_argv(target, case, self.specs[case.model], staged.nb_remote[case.model], result)
        if target.pipeline_mode == pipe.MODE_RUNNER:
            return pipe.runner_argv(case, self.specs, staged.nb_remote, result)
        # PaddleDetection's main prints to stdout only.
        _, argv = main_case_files(target, case, staged.nb_local, self.models.dirs)
        return ["sh", "-c", f"{shlex.join(argv)} > {shlex.quote(result)} && cat {shlex.quote(result)}"]

    def _checked(self, case: BenchCase, staged: Staged, rec: RunRecord, extra: CaseExtra) -> CaseExtra:
        """Give the extra with the persons found (pipelines) or the output check (single models)."""
        if case.pipeline is not None:
            found = rec.persons_found
            extra = replace(extra, persons_found=found)
            if found is not None and found != case.persons:
                extra = extra.with_flag(f"persons-found-{found}")
            return extra
        reference = staged.reference.get(case.model)
        if not reference:
            return extra
        check = check_output_stats(reference, rec.outputs, stats_tolerance(case.precision),
                                   read_as_float=bbin.reads_outputs_as_float(rec))
        extra = replace(extra, output_check=OutputCheck(check.ok, check.detail, rtol=check.rtol,
                                                        max_rel=check.max_rel if check.max_rel < 1e300 else None,
                                                        not_comparable=check.skipped))
        return extra if check.ok else extra.with_flag("outputs-diverge")

    def _memory(self, target: Target, argv: Sequence[str], result: str, rec: RunRecord,
                extra: CaseExtra) -> tuple[RunRecord, CaseExtra, str]:
        """Give the record and extra with init/peak MB from one extra runner invocation with the memory
        profile (warmup 0, repeats 1: its monitor thread perturbs timing, so its times are not kept),
        and that run's log for the raw log; a failed memory run leaves the latencies as they were, flagged."""
        remote = result[: -len(".txt")] + "-memory.txt"
        keep = [a for a in argv if not a.startswith(("--result_path=", "--warmup=", "--repeats="))]
        mem_argv = [*keep, "--warmup=0", "--repeats=1", f"--result_path={remote}", "--enable_memory_profile=true"]
        script = f"cd {shlex.quote(DEVICE_DIR)} && rm -f {shlex.quote(remote)} && {shlex.join(mem_argv)}"
        source = bbin.memory_source(rec)
        log = ""
        try:
            res = target.phone.shell(script, timeout=self.opts.case_timeout_s)
            log = "\n--- memory profile run ---\n" + res.stdout + (
                ("\n--- stderr ---\n" + res.stderr) if res.stderr.strip() else "")
            mem = parse_log(res.stdout)[-1] if res.returncode == 0 else None
            if mem is None or mem.peak_mb is None:
                why = (bbin.failure_hint(res.returncode, res.stdout, res.stderr)
                       or f"runner exited {res.returncode} without a Memory Usage block")
                figures = MemoryFigures(source, error=why)
            else:
                figures = MemoryFigures(source, mem.init_mb, mem.peak_mb)
                rec = replace(rec, init_mb=mem.init_mb, peak_mb=mem.peak_mb)
        except (DeviceError, ParseError) as exc:
            figures = MemoryFigures(source, error=exc.one_line())
        extra = replace(extra, memory=figures)
        return rec, (extra.with_flag("memory-run-failed") if figures.error else extra), log

    def interrupt(self) -> None:
        """Stop the runners of the cases running now, so that the workers' shells return."""
        for fp, pid_file in list(self._active.items()):
            telemetry.stop_remote(self.targets[fp].phone, pid_file)

    def case_name(self, case: BenchCase, serial: str) -> str:
        """Give a failed case's name in the summary."""
        return f"{serial} {case.model} {case.threads}T"

    def resume_flags(self) -> str:
        """Give the adb servers the resume command needs."""
        return "".join(f" --adb-server {s}" for s in self.opts.servers)


def _failure(case: BenchCase, shell_code: int, runner_code: int | None, stdout: str, stderr: str) -> str | None:
    """Give why a case failed from its exit codes and output (benchmark_bin's usage and abort shapes
    included), or None when it ran."""
    if shell_code != 0 or runner_code not in (0, None):
        code = shell_code if shell_code != 0 else int(runner_code or 0)
        last = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
        return bbin.failure_hint(code, stdout, stderr) or faults.runner_exit_reason(code, last)
    if case.pipeline is None:
        return bbin.usage_reason(stdout, stderr)  # benchmark_bin exits 0 after printing its usage
    return None


def _echo_checked(rec: RunRecord, argv: Sequence[str], extra: CaseExtra) -> tuple[RunRecord, CaseExtra]:
    """Give the record with its echo checked (runner version, input shape, threads applied as fields)
    and the extra with each flag whose echo differs from what was passed, flagged."""
    rec, differs = bbin.checked_record(rec, argv)
    echo = tuple(EchoDifference(flag, str(d["asked"]), d["echoed"]) for flag, d in differs.items())
    if echo:
        extra = replace(extra, echo=echo, flags=(*extra.flags, *(f"echo-differs:{e.flag}" for e in echo)))
    return rec, extra


def runner_argv(target: Target, case: BenchCase, spec: ModelSpec, nb_remote: str, result_path: str) -> list[str]:
    """Give the runner command line of a case, as benchmark_bin takes it."""
    shape = ",".join(str(d) for d in (case.batch, *spec.input_shape[1:]))
    argv = [
        target.runner_remote,
        f"--optimized_model_file={nb_remote}",
        f"--input_shape={shape}",
        f"--threads={case.threads}",
        f"--power_mode={case.power_mode}",
        f"--warmup={case.warmup}",
        f"--repeats={case.repeats}",
        f"--backend={target.backend}",
        f"--result_path={result_path}",
    ]
    if case.precision == "fp16":
        argv.append("--cpu_precision=fp16")
    return argv


def plan_options(o: BenchOptions) -> PlanOptions:
    """Give the settings a resumed run keeps."""
    return PlanOptions(servers=tuple(o.servers), pipelines=tuple(o.pipelines), persons=tuple(o.persons),
                       cooldown_s=o.cooldown_s, thermal_wait_s=o.thermal_wait_s, core_sample_s=o.core_sample_s,
                       warmup=o.warmup, repeats=o.repeats, runner=str(o.runner) if o.runner else None,
                       pipeline_runner=str(o.pipeline_runner) if o.pipeline_runner else None, memory=o.memory)


def model_flops(spec: ModelSpec) -> float | None:
    """Give a model's multiply-adds from the zoo's complexity, or None when it cannot say."""
    try:
        from kpmobile.zoo.complexity import model_info

        flops = model_info(spec).get("flops")
        return float(flops) if flops else None
    except Exception:  # noqa: BLE001 - the roofline column is optional; the sweep must not fail for it
        return None


def _stderr_tail(stderr: str) -> str:
    """Give the runner's stderr as the raw log has always kept it after its stdout."""
    return ("\n--- stderr ---\n" + stderr) if stderr.strip() else ""


def _safe_dir(serial: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in serial) or "device"


def _with_energy(result: CaseResult | None, stderr: str, sampler: Sampler | None) -> CaseResult | None:
    """Give an ok result with its energy record (bench --energy), others as they are."""
    if result is None or sampler is None or result.status != "ok" or result.extra is None or result.numbers is None:
        return result
    return replace(result, extra=costs.with_energy(result.extra, stderr, sampler, result.numbers.avg_ms))
