"""What a case costs the phone beyond its latency: the battery sampler around the runner (`--energy`)
and one extra invocation per cell with a profiling runner (`--op-profile`), kept apart from the
latency rounds."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from kpmobile.devices.casescript import Hooks
from kpmobile.devices.energy import CHARGING_HINT, Sampler, energy_of, split_samples
from kpmobile.errors import DeviceError, KpError
from kpmobile.paths import DEVICE_DIR
from kpmobile.records import CaseExtra, Energy, KernelTime

NO_OP_TIMES_X86 = ("the x86 runner has no per-operator times: paddlelite's Python API (MobileConfig /"
                   " LightPredictor) exposes no profiler")


class _Shell(Protocol):
    def shell(self, argv: Sequence[str] | str, timeout: float | None = 120) -> Any: ...


def sampler_for(result_remote: str, energy: bool, idle_s: float) -> Sampler | None:
    """Give the battery sampler of a case (its samples go beside the result file), or None without --energy."""
    return Sampler(f"{result_remote}.bat", idle_s=idle_s) if energy else None


def hooks(sampler: Sampler | None) -> Hooks:
    """Give the case script's hooks of the sampler: the idle baseline after the cool-down wait (a phone
    just cooled is at rest), the sampling loop around the runner only; none without --energy."""
    return sampler.case_hooks() if sampler is not None else Hooks()


def wrap(script: str, sampler: Sampler | None) -> str:
    """Give the case script (made with `hooks(sampler)`) run inside the sampler (unchanged without one)."""
    return sampler.wrap_case(script) if sampler is not None else script


def strip_samples(stderr: str) -> str:
    """Give the runner's stderr without the battery sampler's part."""
    return split_samples(stderr)[0]


def take_energy(stderr: str, sampler: Sampler | None, latency_ms: float | None) -> tuple[str, Energy | None]:
    """Give the runner's stderr without the samples, and the case's energy record (None without --energy)."""
    if sampler is None:
        return stderr, None
    head, folder, samples = split_samples(stderr)
    record = energy_of(folder or "", samples, latency_ms)
    if folder is None:
        record = Energy(0, 0, note="the battery sampler printed nothing (the case shell was cut short)")
    return head, record


def with_energy(extra: CaseExtra, stderr: str, sampler: Sampler | None, latency_ms: float | None) -> CaseExtra:
    """Give the case's extra with its energy record and the record's flags (unchanged without --energy)."""
    _, record = take_energy(stderr, sampler, latency_ms)
    if record is None:
        return extra
    flags = (*extra.flags, *(f for f in record.flags if f not in extra.flags))
    return replace(extra, energy=record, flags=flags)


@dataclass(frozen=True)
class OpProfileOutcome:
    """One profiling invocation, ready for Store.add_op_profile."""

    status: str
    kernels: tuple[KernelTime, ...] = ()
    source: str | None = None
    avg_ms: float | None = None
    error: str | None = None
    raw_log: str | None = None
    runner: str | None = None


def profile_argv(argv: Sequence[str], runner_remote: str, result_remote: str) -> list[str]:
    """Give a case's runner command line with the profiling runner and its own result file."""
    out = [runner_remote, *argv[1:]]
    return [f"--result_path={result_remote}" if a.startswith("--result_path=") else a for a in out]


def run_op_profile(phone: _Shell, argv: Sequence[str], workdir: str, timeout_s: float) -> OpProfileOutcome:
    """Give the kernels of one invocation of a profiling benchmark_bin (its profiler summary is on stderr)."""
    from kpmobile.runners.opprofile import parse_profile, per_kernel
    from kpmobile.runners.parsers import parse_log

    try:
        res = phone.shell(f"cd {shlex.quote(workdir)} && {shlex.join(list(argv))}", timeout=timeout_s)
    except DeviceError as exc:
        return OpProfileOutcome("failed", error=exc.one_line())
    raw = res.stdout + "\n--- stderr ---\n" + res.stderr
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return OpProfileOutcome("failed", error=f"profiling runner exit {res.returncode}: {last}", raw_log=raw)
    try:
        source, kernels = per_kernel(parse_profile(res.stderr))
    except KpError as exc:
        return OpProfileOutcome("failed", error=f"{exc.one_line()} (is --op-runner a LITE_WITH_PROFILE build?)",
                                raw_log=raw)
    try:
        avg = parse_log(res.stdout)[-1].avg_ms
    except KpError:
        avg = None
    return OpProfileOutcome("ok", tuple(kernels), source, avg, raw_log=raw)


def cooldown_line(extras: Sequence[dict[str, Any]]) -> str | None:
    """Give the summary line of the cool-down waits before the cases, or None when none was waited for."""
    waits = [(e.get("cooldown") or {}) for e in extras]
    waited = [float(w.get("waited_s") or 0) + float(w.get("rested_s") or 0) for w in waits]
    cases = sum(1 for w in waited if w >= 0.5)  # a snapshot alone takes up to ~0.3 s; a real wait polls every 2 s
    if not cases:
        return None
    limit = next((w.get("limit_c") for w in waits if w.get("limit_c") is not None), None)
    until = f" (until the hottest zone was below {limit:g} °C)" if isinstance(limit, (int, float)) else ""
    return f"cool-down: waited {sum(waited):.1f} s in all before {cases} of {len(extras)} cases{until}"


def energy_lines(extras: Sequence[dict[str, Any]]) -> list[str]:
    """Give the summary lines of a sweep's energy records: charging cases with the hint, cases without a figure."""
    records = [e["energy"] for e in extras if isinstance(e.get("energy"), dict)]
    charging = [r for r in records if "charging" in (r.get("flags") or [])]
    lines = []
    if charging:
        lines.append(f"energy: {len(charging)} of {len(records)} cases ran on external power (flagged charging); "
                     f"for a clean figure {CHARGING_HINT}")
    notes = sorted({str(r["note"]) for r in records if r.get("energy_mj") is None and r.get("note")})
    lines += [f"energy: {note}" for note in notes]
    return lines


def op_runner(opts: Any, target: Any) -> tuple[Path, str] | None:
    """Give the profiling runner of --op-profile for an ARM phone (local file, device path), or None."""
    local = opts.op_runner or opts.runner
    if not opts.op_profile or target.backend != "arm" or local is None:
        return None
    return Path(local), f"{DEVICE_DIR}/bin/profile/{Path(local).name}"
