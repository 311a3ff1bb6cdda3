"""What a sweep does when phones and runners fail: reasons worth storing, and phones that come back.

A failed case is stored with a one-line reason that names what happened and what to do; a phone
that was unauthorized or offline when the sweep started is remembered in the run's plan, and
`--resume` gives it the run's cases once it is ready.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from kpmobile.errors import DeviceError, KpError
from kpmobile.records import DeviceInfo, PlanDevice, RunPlan, SkippedPhone

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


def skipped_entry(info: DeviceInfo) -> SkippedPhone:
    """Give what the run's plan keeps of a phone that was attached but not ready (unauthorized, offline)."""
    return SkippedPhone(info.state, info.warnings[0] if info.warnings else info.state)


class _Recoverable(Protocol):
    """What adopt_recovered needs of a target."""

    @property
    def info(self) -> DeviceInfo: ...

    @property
    def fp(self) -> str: ...

    @property
    def backend(self) -> str: ...

    def plan_device(self) -> PlanDevice: ...


def adopt_recovered(plan: RunPlan, targets: Sequence[_Recoverable]) -> RunPlan:
    """Give the run's plan plus, for each phone skipped at its start that is ready now, a copy of one
    planned phone's cases (and the phone among the plan's devices, no longer skipped)."""
    cases = list(plan.cases)
    if not plan.skipped or not cases:
        return plan
    planned = {c.device for c in cases}
    template = [c for c in cases if c.device == cases[0].device]
    skipped, devices = dict(plan.skipped), dict(plan.devices)
    for t in targets:
        if t.info.serial not in skipped or t.fp in planned:
            continue
        cases += [replace(c, device=t.fp, backend=t.backend) for c in template]
        devices[t.fp] = t.plan_device()
        del skipped[t.info.serial]
    return replace(plan, cases=tuple(cases), devices=devices, skipped=skipped)
