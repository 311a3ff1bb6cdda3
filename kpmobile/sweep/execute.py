"""Execute a mobile sweep: prepare each phone, run every case, store each result at once."""

from __future__ import annotations

import hashlib
import shlex
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from kpmobile.devices import android, telemetry
from kpmobile.errors import ConfigError, DeviceError, KpError, ParseError, RunnerError
from kpmobile.paths import DEVICE_DIR, cache_dir, default_db
from kpmobile.records import BenchCase, DeviceInfo, ModelSpec, OutputStat
from kpmobile.store import Store
from kpmobile.sweep import conditions, faults
from kpmobile.sweep import pipeline as pipe
from kpmobile.sweep.plan import BenchOptions, pipeline_models, plan_cases, remaining, select_profiles, split_pipeline

X86_ABIS = ("x86_64", "x86")


class SweepInterrupted(KpError):
    """The user stopped the sweep (SIGINT): what finished is stored; --resume runs the rest."""

    exit_code = 130


class Progress(Protocol):
    """Where a sweep reports what it is doing (a rich progress bar in the CLI)."""

    def start(self, total: int, text: str) -> None: ...

    def advance(self, text: str) -> None: ...

    def note(self, text: str) -> None: ...


class SilentProgress:
    """A Progress that shows nothing."""

    def start(self, total: int, text: str) -> None:
        """Ignore the start."""

    def advance(self, text: str) -> None:
        """Ignore a step."""

    def note(self, text: str) -> None:
        """Ignore a note."""


@dataclass
class Counters:
    """Work done outside the runner, which a warm second sweep should not repeat."""

    conversions: int = 0
    conversions_cached: int = 0
    pushes: int = 0
    pushes_skipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        """Add to the named counters."""
        with self.lock:
            for key, value in kw.items():
                setattr(self, key, getattr(self, key) + value)


@dataclass
class BenchOutcome:
    """What a sweep did."""

    run_id: str
    db: Path
    out_dir: Path
    counters: Counters
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False
    skipped_devices: dict[str, Any] = field(default_factory=dict)  # serial -> why the phone was not used

    def to_json(self) -> dict[str, Any]:
        """Give the outcome as plain JSON types."""
        c = self.counters
        return {
            "run_id": self.run_id, "db": str(self.db), "out_dir": str(self.out_dir),
            "conversions": c.conversions, "conversions_cached": c.conversions_cached,
            "pushes": c.pushes, "pushes_skipped": c.pushes_skipped,
            "ok": self.ok, "failed": self.failed, "failures": self.failures, "interrupted": self.interrupted,
            "skipped_devices": self.skipped_devices,
        }


@dataclass
class Target:
    """A phone ready to run cases: its runner and its models on the device."""

    info: DeviceInfo
    phone: android.Phone
    backend: str  # runner --backend
    nb_target: str  # "x86" | "arm"
    runner_local: Path
    runner_remote: str
    runner_name: str
    runner_version: str
    nb_remote: dict[str, str] = field(default_factory=dict)  # model name -> device path
    nb_hash: dict[str, str] = field(default_factory=dict)
    nb_local: dict[str, Path] = field(default_factory=dict)
    reference: dict[str, tuple[OutputStat, ...]] = field(default_factory=dict)  # model -> host output stats
    model_dirs: dict[str, Path] = field(default_factory=dict)
    thermal_limit_c: float = 45.0
    peak_gflops: float | None = None
    pipeline_mode: str = pipe.MODE_COMPOSED
    pipeline_files: list[pipe.PipelineFile] = field(default_factory=list)
    pipeline_runner: tuple[str, str] = ("", "")  # name, version
    broken: str = ""  # why no case can run here (e.g. a runner for the wrong ABI): each is stored failed

    @property
    def fp(self) -> str:
        """Give the device's fingerprint (its serial before identification)."""
        return self.info.fingerprint or self.info.serial

    @property
    def all_cores(self) -> tuple[int, ...]:
        """Give every core the phone reports."""
        return tuple(sorted(core for cl in self.info.clusters for core in cl.cores))

    @property
    def watched_cores(self) -> tuple[int, ...]:
        """Give the cores whose frequencies are recorded: the big ones, else all."""
        return tuple(self.info.big_cores) or self.all_cores

    def expected_cores(self, power_mode: int) -> tuple[int, ...] | None:
        """Give the cores a runner in `power_mode` should run on, or None when any will do."""
        return telemetry.expected_cores(power_mode, self.info.big_cores, self.all_cores)


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> BenchOutcome:
    """Run (or resume) a mobile sweep and give what it did; every case is stored when it ends."""
    from kpmobile.zoo.catalogue import resolve

    progress = progress or SilentProgress()
    store = Store(opts.db or default_db())
    if opts.resume:
        opts = resumed_options(opts, store.run(opts.resume).plan)
    specs = {spec.name: spec for spec in (resolve(m) for m in pipeline_models(opts.models, opts.pipelines))}
    counters = Counters()
    with ExitStack() as stack:
        skipped: dict[str, Any] = {}
        devices = _discover(opts, stack, progress, skipped)
        targets, broken = faults.make_targets(devices, lambda d: _make_target(d, opts))
        targets += [_broken_target(d, opts, broken[d.serial]) for d in devices if d.serial in broken]
        model_dirs, model_hashes = _build_models(specs, progress)
        _prepare_targets(targets, opts, model_dirs)
        run_id, cases = _plan_or_resume(opts, store, specs, targets, skipped)
        out_dir = opts.out_dir / run_id
        outcome = BenchOutcome(run_id, store.path, out_dir, counters)
        for t in targets:
            store.upsert_device(t.info)
        _convert_all(targets, specs, model_dirs, opts, counters, progress)
        _add_main_files(targets, opts)
        todo = remaining(cases, store.done_keys(run_id))
        progress.start(len(todo), f"run {run_id}: {len(todo)} cases on {len(targets)} device(s)")
        stop = threading.Event()
        active: dict[str, tuple[Target, str]] = {}  # fingerprint -> (target, pid file of its running case)
        by_fp = {t.info.fingerprint or t.info.serial: t for t in targets}

        def work(target: Target) -> None:
            fp = target.info.fingerprint or target.info.serial
            mine = [c for c in todo if c.device == fp]
            if not mine:
                return
            try:
                if target.broken:
                    raise KpError(target.broken)
                _push_all(target, counters, progress)
            except KpError as exc:
                for case in mine:
                    _store_failure(store, run_id, case, target, exc.one_line(), model_hashes)
                    progress.advance(f"{target.info.serial} failed")
                return
            for case in mine:
                if stop.is_set():
                    return
                _run_case(store, run_id, case, target, specs, model_hashes, out_dir, opts, active, stop)
                label = case.model if case.pipeline is None else f"{case.pipeline} x{case.persons}"
                progress.advance(f"{target.info.serial} {label} {case.threads}T r{case.round}")

        status = "complete"
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
                futures = [pool.submit(work, by_fp[fp]) for fp in by_fp]
                try:
                    for fut in futures:
                        while not fut.done():
                            time.sleep(0.05)
                        fut.result()
                except KeyboardInterrupt:
                    # Stop the runners now, so that the workers' shells return; nothing more is
                    # started and the cut-off cases are not stored (--resume runs them again).
                    stop.set()
                    status = "interrupted"
                    outcome.interrupted = True
                    for target, pid_file in list(active.values()):
                        telemetry.stop_remote(target.phone, pid_file)
        finally:
            rows = store.cases(run_id)
            outcome.ok = sum(1 for r in rows if r.status == "ok")
            outcome.failed = sum(1 for r in rows if r.status == "failed")
            outcome.failures = [f"{r.serial} {r.model} {r.threads}T: {r.error}" for r in rows if r.status == "failed"]
            if outcome.failed and status == "complete":
                status = "partial"
            plan = store.run(run_id).plan
            outcome.skipped_devices = dict(plan.get("skipped") or {})
            plan["counters"] = outcome.to_json()
            store.set_plan(run_id, plan)
            store.finish_run(run_id, status)
            store.close()
        if outcome.interrupted:
            servers = "".join(f" --adb-server {s}" for s in opts.servers)
            raise SweepInterrupted(
                f"interrupted: run {run_id} is stored with {outcome.ok} of {len(cases)} cases done",
                f"resume it with `kpmobile bench --resume {run_id} --db {store.path}{servers}`")
        return outcome


def resumed_options(opts: BenchOptions, plan: dict[str, Any]) -> BenchOptions:
    """Give the options of a resumed run: its stored models, pipelines and settings; servers and
    runners given now win over the stored ones."""
    from dataclasses import replace

    stored = plan.get("options", {})
    runner = opts.runner or (Path(stored["runner"]) if stored.get("runner") else None)
    main = opts.pipeline_runner or (Path(stored["pipeline_runner"]) if stored.get("pipeline_runner") else None)
    return replace(
        opts,
        models=list(plan.get("models", {})) or list(opts.models),
        pipelines=list(stored.get("pipelines", opts.pipelines)),
        persons=list(stored.get("persons", opts.persons)),
        servers=list(opts.servers) or list(stored.get("servers", [])),
        cooldown_s=float(stored.get("cooldown_s", opts.cooldown_s)),
        thermal_wait_s=float(stored.get("thermal_wait_s", opts.thermal_wait_s)),
        core_sample_s=float(stored.get("core_sample_s", opts.core_sample_s)),
        runner=runner,
        pipeline_runner=main,
    )


# devices ---------------------------------------------------------------------------------
def _discover(opts: BenchOptions, stack: ExitStack, progress: Progress,
              skipped: dict[str, Any] | None = None) -> list[DeviceInfo]:
    servers = list(opts.servers) or [android.default_server()]
    found = android.list_devices(servers)
    if opts.devices:
        wanted = set(opts.devices)
        found = [d for d in found if d.serial in wanted or (d.fingerprint or "") in wanted]
        missing = wanted - {d.serial for d in found} - {d.fingerprint or "" for d in found}
        if missing:
            raise DeviceError(f"device {', '.join(sorted(missing))} is not attached",
                              "see `kpmobile devices` for the attached serials")
    for d in found:
        if d.state != "device":
            progress.note(f"skipping {d.serial}: {d.warnings[0] if d.warnings else d.state}")
            if skipped is not None:
                skipped[d.serial] = faults.skipped_entry(d)
    ready = [d for d in found if d.state == "device"]
    if ready and opts.profiles and not opts.devices:
        keep = {int(i) for i in select_profiles(opts.profiles, {str(i): d.profile for i, d in enumerate(ready)})}
        if not keep:
            seen = ", ".join(f"{d.serial} ({d.profile})" for d in ready)
            raise DeviceError(f"no attached phone matches profile(s) {', '.join(opts.profiles)}; attached: {seen}",
                              "attach such a phone, or name phones with --device SERIAL (it overrides profiles)")
        for i, d in enumerate(ready):
            if i not in keep:
                progress.note(f"skipping {d.serial}: profile {d.profile} is not in {', '.join(opts.profiles)}")
        ready = [d for i, d in enumerate(ready) if i in keep]
    if ready:
        return ready
    if (opts.devices or opts.no_virtual) and found:
        raise DeviceError(f"device {found[0].serial} is {found[0].state}",
                          found[0].warnings[0].split(": ", 1)[-1] if found[0].warnings else "check the phone")
    if opts.no_virtual:
        raise DeviceError("no phone is attached and --no-virtual was given",
                          "plug in a phone with USB debugging enabled, or drop --no-virtual to use a virtual phone")
    return [_start_virtual(servers[0], opts, stack, progress)]


def _start_virtual(server: str, opts: BenchOptions, stack: ExitStack, progress: Progress) -> DeviceInfo:
    from kpmobile.devices.virtual_phone.launch import start_virtual_phone

    progress.note("no phone attached: starting a virtual phone for this run")
    # A fixed sandbox keeps it the same phone across runs: same fingerprint, models already pushed.
    root = cache_dir() / "virtual-phone" / opts.virtual_profile
    phone = stack.enter_context(start_virtual_phone(profile=opts.virtual_profile, root=root))
    android.connect(server, phone.serial)
    stack.callback(android.disconnect, server, phone.serial)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for d in android.list_devices([server]):
            if d.serial == phone.serial and d.state == "device":
                return d
        time.sleep(0.2)
    raise DeviceError(f"virtual phone {phone.serial} did not come up", "run `kpmobile doctor`")


def _make_target(info: DeviceInfo, opts: BenchOptions) -> Target:
    phone = android.Phone(info.serial, info.server)
    abi = info.abi or ""
    if abi in X86_ABIS:
        local, version = own_runner_file()
        name = "kpmobile_lite_runner"
        return Target(info, phone, "x86", "x86", local, f"{DEVICE_DIR}/bin/{name}", name, version)
    if not abi.startswith("arm"):
        raise RunnerError(f"device {info.serial} reports ABI '{abi or 'unknown'}', which kpmobile cannot run",
                          "use an arm64-v8a or armeabi-v7a phone")
    if opts.runner is None:
        raise RunnerError(f"no runner binary for ARM phone {info.serial} ({abi})",
                          "pass --runner PATH to Paddle Lite's benchmark_bin built for that ABI")
    from kpmobile.runners.elf import check_runner_abi

    check_runner_abi(opts.runner, abi, info.abis)
    return Target(info, phone, "arm", "arm", opts.runner, f"{DEVICE_DIR}/bin/{opts.runner.name}",
                  opts.runner.name, "benchmark_bin")


def _broken_target(info: DeviceInfo, opts: BenchOptions, why: KpError) -> Target:
    """Give a Target whose cases are all stored failed with `why` (nothing is pushed or run there)."""
    runner = opts.runner or Path("benchmark_bin")
    return Target(info, android.Phone(info.serial, info.server), "arm", "arm", runner, "", runner.name,
                  "benchmark_bin", broken=why.one_line())


def own_runner_file() -> tuple[Path, str]:
    """Give kpmobile's x86 runner as one executable file (this Python as its shebang) and its version."""
    from kpmobile.runners import LITE_RUNNER_PATH, RUNNER_VERSION, executable_runner

    path = executable_runner(LITE_RUNNER_PATH, "kpmobile_lite_runner", cache_dir() / "runner", sys.executable)
    return path, str(RUNNER_VERSION)


# models ----------------------------------------------------------------------------------
def _build_models(specs: dict[str, ModelSpec], progress: Progress) -> tuple[dict[str, Path], dict[str, str]]:
    from kpmobile.zoo.build import ensure_model, model_hash

    dirs: dict[str, Path] = {}
    hashes: dict[str, str] = {}
    for name, spec in specs.items():
        progress.note(f"model {name}")
        dirs[name] = ensure_model(spec)
        hashes[name] = model_hash(dirs[name])
    return dirs, hashes


def _convert_all(targets: Sequence[Target], specs: dict[str, ModelSpec], dirs: dict[str, Path],
                 opts: BenchOptions, counters: Counters, progress: Progress) -> None:
    from kpmobile.zoo.convert import check_nb_target, convert_nb

    done: dict[tuple[str, str], tuple[Path, str]] = {}
    for t in targets:
        if t.broken:
            continue
        for name in specs:
            key = (name, t.nb_target)
            if key not in done:
                conv = convert_nb(dirs[name], t.nb_target, fp16=opts.precision == "fp16")
                counters.add(conversions_cached=1) if conv.cached else counters.add(conversions=1)
                progress.note(f"{name} -> {t.nb_target} .nb: {'cached' if conv.cached else 'converted'}")
                check_nb_target(conv.path, t.info.abi or "")
                done[key] = (conv.path, conv.key)
            path, nb_key = done[key]
            t.nb_remote[name] = f"{DEVICE_DIR}/models/{name}-{nb_key[:12]}.nb"
            t.nb_hash[name] = nb_key
            t.nb_local[name] = path
    _add_references(targets, specs, dirs, progress)


def _add_references(targets: Sequence[Target], specs: dict[str, ModelSpec], dirs: dict[str, Path],
                    progress: Progress) -> None:
    """Give every target the host's output statistics of each model (x86 .nb, all-ones input)."""
    from kpmobile.sweep.reference import reference_stats
    from kpmobile.zoo.convert import convert_nb

    refs: dict[str, tuple[OutputStat, ...]] = {}
    for name, spec in specs.items():
        try:
            refs[name] = reference_stats(convert_nb(dirs[name], "x86").path, spec.input_shape)
        except KpError as exc:
            progress.note(f"{name}: no reference outputs ({exc.one_line()})")
            refs[name] = ()
    for t in targets:
        t.reference = dict(refs)


def _push_all(target: Target, counters: Counters, progress: Progress) -> None:
    """Push the runner and models whose size and md5 differ on the device; skip the rest."""
    files: list[tuple[Path, str, int]] = [(target.runner_local, target.runner_remote, 0o755)]
    files += [(target.nb_local[name], remote, 0o644) for name, remote in target.nb_remote.items()]
    files += [(f.local, f.remote, f.mode) for f in target.pipeline_files]
    on_device = target.phone.md5sums([remote for _, remote, _ in files])
    for local, remote, mode in files:
        if on_device.get(remote) == file_md5(local):
            counters.add(pushes_skipped=1)
            continue
        target.phone.push(local, remote, mode)
        counters.add(pushes=1)
        progress.note(f"{target.info.serial}: pushed {PurePosixPath(remote).name}")


_MD5_CACHE: dict[tuple[str, float, int], str] = {}


def file_md5(path: Path) -> str:
    """Give a host file's md5 (cached by path, mtime and size)."""
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _MD5_CACHE:
        digest = hashlib.md5()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _MD5_CACHE[key] = digest.hexdigest()
    return _MD5_CACHE[key]


# planning / resume -----------------------------------------------------------------------
def _plan_or_resume(opts: BenchOptions, store: Store, specs: dict[str, ModelSpec],
                    targets: Sequence[Target], skipped: dict[str, Any] | None = None) -> tuple[str, list[BenchCase]]:
    fps = [t.info.fingerprint or t.info.serial for t in targets]
    backends = {fp: t.backend for fp, t in zip(fps, targets)}
    if opts.resume:
        run = store.run(opts.resume)
        cases = [BenchCase(**c) for c in run.plan.get("cases", [])]
        if len(cases) != len(cases := faults.adopt_recovered(run.plan, cases, targets)):
            store.set_plan(run.id, run.plan)  # phones skipped at the start are ready now
        missing = {c.device for c in cases} - set(fps)
        if missing:
            labels = [run.plan.get("devices", {}).get(fp, {}).get("serial", fp) for fp in missing]
            raise DeviceError(f"run {opts.resume} needs device(s) {', '.join(labels)}, which are not attached",
                              "attach them (or their adb server via --adb-server) and resume again")
        return run.id, cases
    piped = [t.fp for t in targets if t.pipeline_mode != pipe.MODE_COMPOSED]
    cases = plan_cases(list(specs), fps, opts.phone_threads, shuffle_seed=opts.shuffle_seed, power_mode=opts.power_mode,
                       warmup=opts.warmup,
                       repeats=opts.repeats, precision=opts.precision, rounds=opts.rounds, backends=backends,
                       power_modes=opts.power_modes, pipelines=opts.pipelines, persons=opts.persons,
                       pipeline_devices=piped)
    names = device_labels([t.info for t in targets])
    plan: dict[str, Any] = {
        "cases": [c.__dict__ for c in cases],
        "models": {n: {"display": s.display, "input_shape": list(s.input_shape), "task": s.task,
                       "flops": model_flops(s)}
                   for n, s in specs.items()},
        "devices": {fp: {"serial": t.info.serial, "label": names[fp], "profile": t.info.profile,
                         "soc": t.info.soc, "abi": t.info.abi, "model": t.info.model,
                         "peak_gflops": t.peak_gflops, "big_cores": list(t.info.big_cores),
                         "thermal_limit_c": t.thermal_limit_c, "pipeline_mode": t.pipeline_mode}
                    for fp, t in zip(fps, targets)},
        "threads": list(opts.phone_threads),
        "power_modes": list(opts.power_modes) or [opts.power_mode],
        "rounds": opts.rounds,
        "skipped": dict(skipped or {}),
        "pipelines": {p: {"det": split_pipeline(p)[0], "pose": split_pipeline(p)[1], "persons": list(opts.persons)}
                      for p in opts.pipelines},
        "options": {"servers": list(opts.servers), "pipelines": list(opts.pipelines), "persons": list(opts.persons),
                    "cooldown_s": opts.cooldown_s, "thermal_wait_s": opts.thermal_wait_s,
                    "core_sample_s": opts.core_sample_s, "warmup": opts.warmup, "repeats": opts.repeats,
                    "runner": str(opts.runner) if opts.runner else None,
                    "pipeline_runner": str(opts.pipeline_runner) if opts.pipeline_runner else None},
    }
    return store.new_run(opts.command, plan), cases


def device_labels(infos: Sequence[DeviceInfo]) -> dict[str, str]:
    """Give each device's column label: its profile's display name, plus the serial when shared."""
    from kpmobile.config import load_profiles

    profiles = load_profiles()
    names: dict[str, str] = {}
    for d in infos:
        prof = profiles.get(d.profile or "")
        base = prof.display if prof is not None and prof.name != "generic" else (d.soc or d.model or d.serial)
        names[d.fingerprint or d.serial] = base
    counts: dict[str, int] = {}
    for label in names.values():
        counts[label] = counts.get(label, 0) + 1
    return {fp: (f"{label} [{next(d.serial for d in infos if (d.fingerprint or d.serial) == fp)}]"
                 if counts[label] > 1 else label) for fp, label in names.items()}


# one case --------------------------------------------------------------------------------
def runner_argv(target: Target, case: BenchCase, spec: ModelSpec, result_path: str) -> list[str]:
    """Give the runner command line of a case, as benchmark_bin takes it."""
    shape = ",".join(str(d) for d in (case.batch, *spec.input_shape[1:]))
    argv = [
        target.runner_remote,
        f"--optimized_model_file={target.nb_remote[case.model]}",
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


def _run_case(store: Store, run_id: str, case: BenchCase, target: Target, specs: dict[str, ModelSpec],
              model_hashes: dict[str, str], out_dir: Path, opts: BenchOptions,
              active: dict[str, tuple[Target, str]] | None = None, stop: threading.Event | None = None) -> None:
    """Run one case under watched conditions and store it; an interrupted case is not stored."""
    from kpmobile.runners.parsers import parse_log

    idx = hashlib.sha1(case.key().encode()).hexdigest()[:12]
    result_dir = f"{DEVICE_DIR}/results/{run_id}"
    result_remote = f"{result_dir}/{idx}.txt"
    pid_file, cores_file = f"{result_remote}.pid", f"{result_remote}.cores"
    if case.pipeline is None:
        argv = runner_argv(target, case, specs[case.model], result_remote)
        runner, version, model_hash = target.runner_name, target.runner_version, model_hashes.get(case.model)
        artifact = target.nb_hash.get(case.model)
    else:
        det, pose = split_pipeline(case.pipeline)
        argv = _pipeline_argv(target, case, specs, result_remote)
        runner, version = target.pipeline_runner
        model_hash = f"{model_hashes.get(det)}+{model_hashes.get(pose)}"
        artifact = f"{target.nb_hash.get(det)}+{target.nb_hash.get(pose)}"
    common: dict[str, Any] = dict(serial=target.info.serial, model_hash=model_hash, artifact_hash=artifact,
                                  runner=runner, runner_version=version)
    watch = conditions.before_case(target.phone, target.watched_cores, target.thermal_limit_c, opts.cooldown_s,
                                   opts.thermal_wait_s, stop)
    if stop is not None and stop.is_set():
        return
    script = (f"mkdir -p {shlex.quote(result_dir)} && rm -f {shlex.quote(result_remote)} && "
              + telemetry.monitored_script(argv, DEVICE_DIR, pid_file, cores_file, opts.core_sample_s))
    if active is not None:
        active[target.fp] = (target, pid_file)
    try:
        res = target.phone.shell(script, timeout=opts.case_timeout_s)
    except DeviceError as exc:
        telemetry.stop_remote(target.phone, pid_file)  # a timed-out runner must not run on
        if stop is None or not stop.is_set():
            store.add_case(run_id, case, status="failed", error=faults.shell_failure_reason(exc, opts.case_timeout_s),
                           **common)
        return
    finally:
        if active is not None:
            active.pop(target.fp, None)
    if stop is not None and stop.is_set():
        return  # cut off by the user: --resume runs it again
    extra = conditions.after_case(target.phone, target.watched_cores, watch, cores_file,
                                  target.expected_cores(case.power_mode))
    raw = res.stdout + (("\n--- stderr ---\n" + res.stderr) if res.stderr.strip() else "")
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["no output"])[-1]
        reason = faults.runner_exit_reason(res.returncode, last)
        store.add_case(run_id, case, status="failed", error=reason, raw_log=raw, extra=extra, **common)
        return
    try:
        name = f"{case.model}-{case.threads}t-p{case.power_mode}-r{case.round}"
        name += f"-x{case.persons}.txt" if case.pipeline else ".txt"
        local = target.phone.pull_into(result_remote, out_dir / _safe_dir(target.info.serial), name)
        text = local.read_text(errors="replace")
        records = parse_log(text)
    except (DeviceError, ParseError) as exc:
        store.add_case(run_id, case, status="failed", error=exc.one_line(), raw_log=raw, extra=extra, **common)
        return
    rec = records[-1]
    if case.pipeline is not None:
        found = next((int(n.split(":")[1]) for n in rec.notes if n.startswith("persons:")), None)
        extra["persons_found"] = found
        if found is not None and found != case.persons:
            extra["flags"].append(f"persons-found-{found}")
    if case.pipeline is None and target.reference.get(case.model):
        from kpmobile.report.outputs import check_output_stats, stats_tolerance

        check = check_output_stats(target.reference[case.model], rec.outputs, stats_tolerance(case.precision))
        extra["output_check"] = {"ok": check.ok, "rtol": check.rtol, "detail": check.detail,
                                 "max_rel": check.max_rel if check.max_rel < 1e300 else None}
        if not check.ok:
            extra.setdefault("flags", []).append("outputs-diverge")
    numbers = {"avg_ms": rec.avg_ms, "min_ms": rec.min_ms, "max_ms": rec.max_ms,
               "first_ms": rec.first_ms, "init_ms": rec.init_ms}
    store.add_case(run_id, case, status="ok", numbers=numbers, record=rec.to_json(), raw_log=raw, extra=extra,
                   **common)


def _pipeline_argv(target: Target, case: BenchCase, specs: dict[str, ModelSpec], result_remote: str) -> list[str]:
    """Give the command line of a pipeline case; PaddleDetection's main prints to stdout only."""
    if target.pipeline_mode == pipe.MODE_RUNNER:
        return pipe.runner_argv(case, specs, target.nb_remote, result_remote)
    _, argv = _main_case_files(target, case)
    return ["sh", "-c", f"{shlex.join(argv)} > {shlex.quote(result_remote)} && cat {shlex.quote(result_remote)}"]


def _main_case_files(target: Target, case: BenchCase) -> tuple[list[pipe.PipelineFile], list[str]]:
    main = Path(target.pipeline_runner[0])
    return pipe.main_files(main, case, target.nb_local, target.model_dirs, cache_dir() / "pipeline")


def _add_main_files(targets: Sequence[Target], opts: BenchOptions) -> None:
    """Give PaddleDetection-main phones every file their pipeline cases need (after conversion)."""
    for t in targets:
        if t.pipeline_mode != pipe.MODE_MAIN:
            continue
        seen: set[str] = set()
        for p in opts.pipelines:
            for threads in opts.phone_threads:
                files, _ = _main_case_files(t, BenchCase(model=p, device=t.fp, threads=threads, pipeline=p))
                for f in files:
                    if f.remote not in seen:
                        seen.add(f.remote)
                        t.pipeline_files.append(f)


def _prepare_targets(targets: Sequence[Target], opts: BenchOptions, model_dirs: dict[str, Path]) -> None:
    """Give each target its profile's thermal limit and peak, and its pipeline runner and files."""
    from kpmobile.config import load_profiles

    profiles = load_profiles()
    for t in targets:
        prof = profiles.get(t.info.profile or "")
        if prof is not None:
            t.thermal_limit_c, t.peak_gflops = prof.thermal_limit_c, prof.peak_gflops
        t.model_dirs = dict(model_dirs)
        if not opts.pipelines:
            continue
        t.pipeline_mode = pipe.pipeline_mode(t.info.abi or "", opts.pipeline_runner is not None)
        if t.pipeline_mode == pipe.MODE_RUNNER:
            t.pipeline_files = pipe.runner_files()
            local, version = pipe.own_pipeline_runner_file()
            t.pipeline_runner = (local.name, version)
        elif t.pipeline_mode == pipe.MODE_MAIN and opts.pipeline_runner is not None:
            from kpmobile.runners.elf import check_runner_abi

            check_runner_abi(opts.pipeline_runner, t.info.abi or "", t.info.abis)
            t.pipeline_runner = (str(opts.pipeline_runner), "paddledet-lite-main")


def model_flops(spec: ModelSpec) -> float | None:
    """Give a model's multiply-adds from the zoo's complexity, or None when it cannot say."""
    try:
        from kpmobile.zoo.complexity import model_info

        flops = model_info(spec).get("flops")
        return float(flops) if flops else None
    except Exception:  # noqa: BLE001 - the roofline column is optional; the sweep must not fail for it
        return None


def _store_failure(store: Store, run_id: str, case: BenchCase, target: Target, reason: str,
                   model_hashes: dict[str, str]) -> None:
    store.add_case(run_id, case, serial=target.info.serial, status="failed", error=reason,
                   model_hash=model_hashes.get(case.model), runner=target.runner_name,
                   runner_version=target.runner_version)


def _safe_dir(serial: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in serial) or "device"


__all__ = ["BenchOptions", "BenchOutcome", "ConfigError", "run_bench"]
