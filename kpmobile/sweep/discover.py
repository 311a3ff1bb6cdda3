"""Discovery: the phones (or the host) a sweep runs on, each built once as a frozen Target."""

from __future__ import annotations

import hashlib
import platform
import socket
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from kpmobile.devices import android, telemetry
from kpmobile.errors import ConfigError, DeviceError, KpError, RunnerError
from kpmobile.paths import DEVICE_DIR, cache_dir
from kpmobile.records import DeviceInfo, PlanDevice, SkippedPhone
from kpmobile.sweep import faults
from kpmobile.sweep import pipeline as pipe
from kpmobile.sweep.case import Progress
from kpmobile.sweep.plan import BenchOptions, select_profiles

X86_ABIS = ("x86_64", "x86")
HOST_SERIAL = "host"
VIRTUAL_PHONES = {"x86": (None, "x86_64"), "arm": ("kirin980", "arm64-v8a")}  # --virtual: (profile, ABI)


@dataclass(frozen=True)
class Target:
    """A phone a sweep runs on: its runner, its profile's limits and how it gets pipeline numbers."""

    info: DeviceInfo
    phone: android.Phone
    backend: str  # runner --backend, and the .nb target: "x86" | "arm"
    runner_local: Path
    runner_remote: str
    runner_name: str
    runner_version: str
    thermal_limit_c: float = 45.0
    peak_gflops: float | None = None
    pipeline_mode: str = pipe.MODE_COMPOSED
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
        """Give the cores a runner in `power_mode` should run on, or None when any will do.

        An emulated phone's runner runs wherever its host puts qemu's threads, which no power mode
        binds: there the cores are recorded but not judged (every cell would be flagged otherwise)."""
        if self.info.emulated:
            return None
        return telemetry.expected_cores(power_mode, self.info.big_cores, self.all_cores)

    def plan_device(self, label: str | None = None) -> PlanDevice:
        """Give what the run's plan keeps of this phone."""
        i = self.info
        return PlanDevice(serial=i.serial, label=label or i.model or i.serial, profile=i.profile, soc=i.soc,
                          abi=i.abi, model=i.model, peak_gflops=self.peak_gflops, big_cores=tuple(i.big_cores),
                          thermal_limit_c=self.thermal_limit_c, pipeline_mode=self.pipeline_mode,
                          emulated=i.emulated)


@dataclass(frozen=True)
class Discovery:
    """The phones found: their targets and the ones attached but not ready."""

    targets: tuple[Target, ...]
    skipped: dict[str, SkippedPhone]


def discover_phones(opts: BenchOptions, stack: ExitStack, progress: Progress) -> Discovery:
    """Give the targets of a phone sweep (a virtual phone is started, within `stack`, when none is attached)."""
    skipped: dict[str, SkippedPhone] = {}
    devices = _find(opts, stack, progress, skipped)
    targets, broken = faults.make_targets(devices, lambda d: _make_target(d, opts))
    targets += [_broken_target(d, opts, broken[d.serial]) for d in devices if d.serial in broken]
    return Discovery(tuple(targets), skipped)


def _find(opts: BenchOptions, stack: ExitStack, progress: Progress,
          skipped: dict[str, SkippedPhone]) -> list[DeviceInfo]:
    from kpmobile.devices.virtual_phone.launch import started_by_another_sweep

    servers = list(opts.servers) or [android.default_server()]
    if opts.virtual is not None:
        if opts.virtual not in VIRTUAL_PHONES:
            raise ConfigError(f"unknown virtual phone '{opts.virtual}'", "use --virtual x86 or --virtual arm")
        return [_start_virtual(servers[0], opts, stack, progress)]
    # A virtual phone another sweep started is that sweep's: it stops when that sweep ends.
    found = _wanted([d for d in android.list_devices(servers) if not started_by_another_sweep(d.serial)], opts)
    for d in found:
        if d.state != "device":
            progress.note(f"skipping {d.serial}: {d.warnings[0] if d.warnings else d.state}")
            skipped[d.serial] = faults.skipped_entry(d)
    ready = [d for d in found if d.state == "device"]
    if ready and opts.profiles and not opts.devices:
        ready = _by_profile(ready, opts, progress)
    if ready:
        return ready
    if (opts.devices or opts.no_virtual) and found:
        raise DeviceError(f"device {found[0].serial} is {found[0].state}",
                          found[0].warnings[0].split(": ", 1)[-1] if found[0].warnings else "check the phone")
    if opts.no_virtual:
        raise DeviceError("no phone is attached and --no-virtual was given",
                          "plug in a phone with USB debugging enabled, or drop --no-virtual to use a virtual phone")
    return [_start_virtual(servers[0], opts, stack, progress)]


def _wanted(found: list[DeviceInfo], opts: BenchOptions) -> list[DeviceInfo]:
    if not opts.devices:
        return found
    wanted = set(opts.devices)
    found = [d for d in found if d.serial in wanted or (d.fingerprint or "") in wanted]
    missing = wanted - {d.serial for d in found} - {d.fingerprint or "" for d in found}
    if missing:
        raise DeviceError(f"device {', '.join(sorted(missing))} is not attached",
                          "see `kpmobile devices` for the attached serials")
    return found


def _by_profile(ready: list[DeviceInfo], opts: BenchOptions, progress: Progress) -> list[DeviceInfo]:
    keep = {int(i) for i in select_profiles(opts.profiles, {str(i): d.profile for i, d in enumerate(ready)})}
    if not keep:
        seen = ", ".join(f"{d.serial} ({d.profile})" for d in ready)
        raise DeviceError(f"no attached phone matches profile(s) {', '.join(opts.profiles)}; attached: {seen}",
                          "attach such a phone, or name phones with --device SERIAL (it overrides profiles)")
    for i, d in enumerate(ready):
        if i not in keep:
            progress.note(f"skipping {d.serial}: profile {d.profile} is not in {', '.join(opts.profiles)}")
    return [d for i, d in enumerate(ready) if i in keep]


def _start_virtual(server: str, opts: BenchOptions, stack: ExitStack, progress: Progress) -> DeviceInfo:
    from kpmobile.devices.virtual_phone.launch import start_virtual_phone

    profile, abi = VIRTUAL_PHONES.get(opts.virtual or "x86", (None, "x86_64"))
    profile = profile or opts.virtual_profile
    if opts.virtual == "arm":
        progress.note("starting the ARM virtual phone (kirin980, aarch64 under qemu: timings are emulated)")
    elif opts.virtual is None:
        progress.note("no phone attached: starting a virtual phone for this run")
    # A fixed sandbox keeps it the same phone across runs: same fingerprint, models already pushed.
    root = cache_dir() / "virtual-phone" / (profile if abi == "x86_64" else f"{profile}-{abi}")
    phone = stack.enter_context(start_virtual_phone(profile=profile, root=root, extra_args=["--abi", abi]))
    phone.claim_for_sweep()
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
        return Target(info, phone, "x86", local, f"{DEVICE_DIR}/bin/{name}", name, version, *_traits(info, opts))
    if not abi.startswith("arm"):
        raise RunnerError(f"device {info.serial} reports ABI '{abi or 'unknown'}', which kpmobile cannot run",
                          "use an arm64-v8a or armeabi-v7a phone")
    if opts.runner is None:
        raise RunnerError(f"no runner binary for ARM phone {info.serial} ({abi})",
                          "pass --runner PATH to Paddle Lite's benchmark_bin built for that ABI")
    from kpmobile.runners.elf import check_runner_abi

    check_runner_abi(opts.runner, abi, info.abis)
    return Target(info, phone, "arm", opts.runner, f"{DEVICE_DIR}/bin/{opts.runner.name}", opts.runner.name,
                  "benchmark_bin", *_traits(info, opts))


def _broken_target(info: DeviceInfo, opts: BenchOptions, why: KpError) -> Target:
    """Give a Target whose cases are all stored failed with `why` (nothing is pushed or run there)."""
    runner = opts.runner or Path("benchmark_bin")
    try:
        traits = _traits(info, opts)
    except KpError:  # its pipeline runner is wrong too: its single-model cases still say why
        traits = _traits(info, replace(opts, pipelines=()))
    return Target(info, android.Phone(info.serial, info.server), "arm", runner, "", runner.name, "benchmark_bin",
                  *traits, broken=why.one_line())


def _traits(info: DeviceInfo, opts: BenchOptions) -> tuple[float, float | None, str, tuple[str, str]]:
    """Give a phone's thermal limit and peak (its profile's) and how it runs pipelines: mode and runner."""
    from kpmobile.config import load_profiles

    prof = load_profiles().get(info.profile or "")
    limit, peak = (prof.thermal_limit_c, prof.peak_gflops) if prof is not None else (45.0, None)
    if not opts.pipelines:
        return limit, peak, pipe.MODE_COMPOSED, ("", "")
    mode = pipe.pipeline_mode(info.abi or "", opts.pipeline_runner is not None)
    runner = ("", "")
    if mode == pipe.MODE_RUNNER:
        local, version = pipe.own_pipeline_runner_file()
        runner = (local.name, version)
    elif mode == pipe.MODE_MAIN and opts.pipeline_runner is not None:
        from kpmobile.runners.elf import check_runner_abi

        check_runner_abi(opts.pipeline_runner, info.abi or "", info.abis)
        runner = (str(opts.pipeline_runner), "paddledet-lite-main")
    return limit, peak, mode, runner


def own_runner_file() -> tuple[Path, str]:
    """Give kpmobile's x86 runner as one executable file (this Python as its shebang) and its version."""
    from kpmobile.runners import LITE_RUNNER_PATH, RUNNER_VERSION, executable_runner

    path = executable_runner(LITE_RUNNER_PATH, "kpmobile_lite_runner", cache_dir() / "runner", sys.executable)
    return path, str(RUNNER_VERSION)


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
    from kpmobile.backends.probe import cuda_gpus  # the backends package imports numpy: host sweeps only

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
