"""What a sweep does when phones and runners fail: reasons worth storing, and phones that come back.

A failed case is stored with a one-line reason that names what happened and what to do; a phone
that was unauthorized or offline when the sweep started is remembered in the run's plan, and
`--resume` gives it the run's cases once it is ready.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from kpmobile.errors import DeviceError, KpError
from kpmobile.records import BenchCase, DeviceInfo

T = TypeVar("T")

_EXIT_HINTS = {
    134: "the runtime aborted: the .nb on the device may be corrupt or truncated; "
         "--resume pushes it again when its md5 differs",
    139: "the runner crashed: check that the runner and the .nb were built for this ABI, then --resume",
}


def runner_exit_reason(returncode: int, last_line: str) -> str:
    """Give the stored reason of a runner that exited non-zero: exit code, signal, its last line, a hint."""
    what = f"runner exited {returncode}"
    if returncode > 128 and returncode - 128 in signal.Signals._value2member_map_:
        what += f" ({signal.Signals(returncode - 128).name})"
    hint = _EXIT_HINTS.get(returncode, "see the stored raw log (kpmobile runs show), fix the cause, then --resume")
    return f"{what}: {last_line.strip()[:300] or 'no output'}; {hint}"


def shell_failure_reason(exc: DeviceError, timeout_s: float | None) -> str:
    """Give the stored reason of a case whose runner command did not come back."""
    if "timed out" in exc.message and timeout_s is not None:
        return (f"runner hung: no result after {timeout_s:g} s (--case-timeout), so it was killed on the device; "
                "raise --case-timeout if the model needs longer, else check the runner, then --resume")
    return exc.one_line()


def make_targets(devices: Sequence[DeviceInfo], make: Callable[[DeviceInfo], T]) -> tuple[list[T], dict[str, KpError]]:
    """Give the targets that could be made and, by serial, why the others could not (e.g. a runner
    built for the wrong ABI); when none could be made, raise the first reason."""
    made: list[T] = []
    broken: dict[str, KpError] = {}
    for info in devices:
        try:
            made.append(make(info))
        except KpError as exc:
            broken[info.serial] = exc
    if not made and broken:
        raise next(iter(broken.values()))
    return made, broken


def skipped_entry(info: DeviceInfo) -> dict[str, Any]:
    """Give what the run's plan keeps of a phone that was attached but not ready (unauthorized, offline)."""
    return {"state": info.state, "reason": info.warnings[0] if info.warnings else info.state}


def adopt_recovered(plan: dict[str, Any], cases: list[BenchCase], targets: Sequence[Any]) -> list[BenchCase]:
    """Give the run's cases plus, for each phone skipped at its start that is ready now, a copy of one
    planned phone's cases; the plan (cases, devices, skipped) is updated in place."""
    skipped: dict[str, Any] = plan.get("skipped") or {}
    planned = {c.device for c in cases}
    if not skipped or not cases:
        return cases
    template_fp = cases[0].device
    template = [c for c in cases if c.device == template_fp]
    out = list(cases)
    for t in targets:
        if t.info.serial not in skipped or t.fp in planned:
            continue
        added = [replace(c, device=t.fp, backend=t.backend) for c in template]
        out += added
        plan.setdefault("cases", []).extend(c.__dict__ for c in added)
        plan.setdefault("devices", {})[t.fp] = {
            "serial": t.info.serial, "label": t.info.model or t.info.serial, "profile": t.info.profile,
            "soc": t.info.soc, "abi": t.info.abi, "model": t.info.model, "peak_gflops": t.peak_gflops,
            "big_cores": list(t.info.big_cores), "thermal_limit_c": t.thermal_limit_c,
            "pipeline_mode": t.pipeline_mode,
        }
        del skipped[t.info.serial]
    return out
