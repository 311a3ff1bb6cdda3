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

from kpmobile.devices import android
from kpmobile.errors import ConfigError, DeviceError, KpError, ParseError, RunnerError
from kpmobile.paths import DEVICE_DIR, cache_dir, default_db
from kpmobile.records import BenchCase, DeviceInfo, ModelSpec
from kpmobile.store import Store
from kpmobile.sweep.plan import BenchOptions, plan_cases, remaining

X86_ABIS = ("x86_64", "x86")


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

    def to_json(self) -> dict[str, Any]:
        """Give the outcome as plain JSON types."""
        c = self.counters
        return {
            "run_id": self.run_id, "db": str(self.db), "out_dir": str(self.out_dir),
            "conversions": c.conversions, "conversions_cached": c.conversions_cached,
            "pushes": c.pushes, "pushes_skipped": c.pushes_skipped,
            "ok": self.ok, "failed": self.failed, "failures": self.failures, "interrupted": self.interrupted,
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


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> BenchOutcome:
    """Run (or resume) a mobile sweep and give what it did; every case is stored when it ends."""
    from kpmobile.zoo.catalogue import resolve

    progress = progress or SilentProgress()
    specs = {spec.name: spec for spec in (resolve(m) for m in opts.models)}
    store = Store(opts.db or default_db())
    counters = Counters()
    with ExitStack() as stack:
        devices = _discover(opts, stack, progress)
        targets = [_make_target(d, opts) for d in devices]
        model_dirs, model_hashes = _build_models(specs, progress)
        run_id, cases = _plan_or_resume(opts, store, specs, targets)
        out_dir = opts.out_dir / run_id
        outcome = BenchOutcome(run_id, store.path, out_dir, counters)
        for t in targets:
            store.upsert_device(t.info)
        _convert_all(targets, specs, model_dirs, opts, counters, progress)
        todo = remaining(cases, store.done_keys(run_id))
        progress.start(len(todo), f"run {run_id}: {len(todo)} cases on {len(targets)} device(s)")
        stop = threading.Event()
        by_fp = {t.info.fingerprint or t.info.serial: t for t in targets}

        def work(target: Target) -> None:
            fp = target.info.fingerprint or target.info.serial
            mine = [c for c in todo if c.device == fp]
            if not mine:
                return
            try:
                _push_all(target, counters, progress)
            except KpError as exc:
                for case in mine:
                    _store_failure(store, run_id, case, target, exc.one_line(), model_hashes)
                    progress.advance(f"{target.info.serial} failed")
                return
            for case in mine:
                if stop.is_set():
                    return
                _run_case(store, run_id, case, target, specs[case.model], model_hashes, out_dir, opts)
                progress.advance(f"{target.info.serial} {case.model} {case.threads}T")

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
                    stop.set()
                    status = "interrupted"
                    outcome.interrupted = True
                    raise
        finally:
            rows = store.cases(run_id)
            outcome.ok = sum(1 for r in rows if r.status == "ok")
            outcome.failed = sum(1 for r in rows if r.status == "failed")
            outcome.failures = [f"{r.serial} {r.model} {r.threads}T: {r.error}" for r in rows if r.status == "failed"]
            if outcome.failed and status == "complete":
                status = "partial"
            plan = store.run(run_id).plan
            plan["counters"] = outcome.to_json()
            store.set_plan(run_id, plan)
            store.finish_run(run_id, status)
            store.close()
        return outcome


# devices ---------------------------------------------------------------------------------
def _discover(opts: BenchOptions, stack: ExitStack, progress: Progress) -> list[DeviceInfo]:
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
    ready = [d for d in found if d.state == "device"]
    if ready:
        return ready
    if opts.devices and found:
        raise DeviceError(f"device {found[0].serial} is {found[0].state}",
                          found[0].warnings[0] if found[0].warnings else "check the phone")
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


def own_runner_file() -> tuple[Path, str]:
    """Give kpmobile's x86 runner as one executable file (this Python as its shebang) and its version."""
    from kpmobile.runners import lite_runner

    source = Path(lite_runner.__file__).read_text()
    text = f"#!{sys.executable}\n" + source
    folder = cache_dir() / "runner"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kpmobile_lite_runner"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    return path, str(getattr(lite_runner, "RUNNER_VERSION", "unknown"))


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


def _push_all(target: Target, counters: Counters, progress: Progress) -> None:
    """Push the runner and models whose size and md5 differ on the device; skip the rest."""
    files: list[tuple[Path, str, int]] = [(target.runner_local, target.runner_remote, 0o755)]
    files += [(target.nb_local[name], remote, 0o644) for name, remote in target.nb_remote.items()]
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
                    targets: Sequence[Target]) -> tuple[str, list[BenchCase]]:
    fps = [t.info.fingerprint or t.info.serial for t in targets]
    backends = {fp: t.backend for fp, t in zip(fps, targets)}
    if opts.resume:
        run = store.run(opts.resume)
        cases = [BenchCase(**c) for c in run.plan.get("cases", [])]
        missing = {c.device for c in cases} - set(fps)
        if missing:
            labels = [run.plan.get("devices", {}).get(fp, {}).get("serial", fp) for fp in missing]
            raise DeviceError(f"run {opts.resume} needs device(s) {', '.join(labels)}, which are not attached",
                              "attach them (or their adb server via --adb-server) and resume again")
        return run.id, cases
    cases = plan_cases(list(specs), fps, opts.threads, power_mode=opts.power_mode, warmup=opts.warmup,
                       repeats=opts.repeats, precision=opts.precision, rounds=opts.rounds, backends=backends)
    labels = device_labels([t.info for t in targets])
    plan = {
        "cases": [c.__dict__ for c in cases],
        "models": {n: {"display": s.display, "input_shape": list(s.input_shape), "task": s.task}
                   for n, s in specs.items()},
        "devices": {fp: {"serial": t.info.serial, "label": labels[fp], "profile": t.info.profile,
                         "soc": t.info.soc, "abi": t.info.abi, "model": t.info.model}
                    for fp, t in zip(fps, targets)},
        "threads": list(opts.threads),
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


def _run_case(store: Store, run_id: str, case: BenchCase, target: Target, spec: ModelSpec,
              model_hashes: dict[str, str], out_dir: Path, opts: BenchOptions) -> None:
    from kpmobile.runners.parsers import parse_log

    idx = hashlib.sha1(case.key().encode()).hexdigest()[:12]
    result_remote = f"{DEVICE_DIR}/results/{run_id}/{idx}.txt"
    argv = runner_argv(target, case, spec, result_remote)
    script = (f"mkdir -p {shlex.quote(DEVICE_DIR + '/results/' + run_id)} && rm -f {shlex.quote(result_remote)}"
              f" && cd {shlex.quote(DEVICE_DIR)} && {shlex.join(argv)}")
    common: dict[str, Any] = dict(
        serial=target.info.serial, model_hash=model_hashes.get(case.model),
        artifact_hash=target.nb_hash.get(case.model), runner=target.runner_name,
        runner_version=target.runner_version,
    )
    try:
        res = target.phone.shell(script, timeout=opts.case_timeout_s)
    except DeviceError as exc:
        store.add_case(run_id, case, status="failed", error=exc.one_line(), **common)
        return
    raw = res.stdout + (("\n--- stderr ---\n" + res.stderr) if res.stderr.strip() else "")
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["no output"])[-1]
        reason = f"runner exited {res.returncode}: {last[:200]}"
        store.add_case(run_id, case, status="failed", error=reason, raw_log=raw, **common)
        return
    try:
        local = target.phone.pull_into(result_remote, out_dir / _safe_dir(target.info.serial),
                                       f"{case.model}-{case.threads}t-r{case.round}.txt")
        text = local.read_text(errors="replace")
        records = parse_log(text)
    except (DeviceError, ParseError) as exc:
        store.add_case(run_id, case, status="failed", error=exc.one_line(), raw_log=raw, **common)
        return
    rec = records[-1]
    numbers = {"avg_ms": rec.avg_ms, "min_ms": rec.min_ms, "max_ms": rec.max_ms,
               "first_ms": rec.first_ms, "init_ms": rec.init_ms}
    store.add_case(run_id, case, status="ok", numbers=numbers, record=rec.to_json(), raw_log=raw, **common)


def _store_failure(store: Store, run_id: str, case: BenchCase, target: Target, reason: str,
                   model_hashes: dict[str, str]) -> None:
    store.add_case(run_id, case, serial=target.info.serial, status="failed", error=reason,
                   model_hash=model_hashes.get(case.model), runner=target.runner_name,
                   runner_version=target.runner_version)


def _safe_dir(serial: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in serial) or "device"


__all__ = ["BenchOptions", "BenchOutcome", "ConfigError", "run_bench"]
