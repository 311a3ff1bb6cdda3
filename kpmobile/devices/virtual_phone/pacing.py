"""The virtual phone's test-only `--slowdown PCT`: the runners it runs are really slower by PCT %.

While a slowdown is in force, every shell command gets `KPMOBILE_SLOWDOWN_PCT=PCT` in its
environment, and kpmobile's runners (lite_runner, pipeline_runner) stretch each timed iteration
by spinning to (1 + PCT/100) times its own run time: the wall time and every printed time
grow by PCT %, whatever else the machine runs.

Why not stop the command's process group with SIGSTOP / SIGCONT for PCT % of its run: on a loaded
host the scheduler repays a task that was stopped while it waited for a CPU anyway, and a 30 %
duty cycle slowed a CPU-bound command by only about 10 % (median of 15 pairs at load 4-7).

`ROOT/faults/slowdown` holds PCT; the phone reads it for every shell command, so a test can switch
the slowdown on and off without restarting the phone. getprop shows it as
`kpmobile.virtual.slowdown_pct`, and `kpmobile devices --json` as `slowdown_pct`.

`--nice N` (tests only, root for N < 0) gives every shell command's session (its autogroup, which
the kernel schedules as one) and process that nice value. A virtual phone shares the host's CPUs
with whatever else runs there; at load 10 on 2 cores a runner got a fifth of a CPU and its
iterations varied two-fold, which no statistics can see through. `--nice -20` gives the phone's
runner a CPU of its own, as a real phone has (a CPU-bound loop: 2.08 s at nice 0, 0.46 s at -20).

`--cpus LIST` (e.g. `0` or `0-1,3`) keeps the phone and everything it runs on those host CPUs, as a
real phone's cores are its own: two virtual phones on two CPUs no longer take each other's. The x86
runner's OpenMP pool takes every CPU it may use (1.7 CPUs busy for one 1-thread runner on 2 cores),
so two unpinned phones on a 2-core host measure the host, not the orchestrator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kpmobile.devices.identify import SLOWDOWN_PROP

SLOWDOWN_ENV = "KPMOBILE_SLOWDOWN_PCT"  # the runners read it (they import nothing of kpmobile)


def parse_cpus(text: str, allowed: frozenset[int] | None = None) -> frozenset[int]:
    """Give the CPUs of a list such as `0` or `0-1,3`; ValueError(what, what to do) when it is not one,
    or names a CPU outside `allowed` (default: the CPUs this process may use)."""
    allowed = frozenset(os.sched_getaffinity(0)) if allowed is None else allowed
    cpus: set[int] = set()
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"'{text}' is not a CPU list", "give numbers and ranges such as 0-1,3")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ValueError(f"'{part.strip()}' runs backwards", "give the low CPU first")
        cpus.update(range(first, last + 1))
    outside = sorted(cpus - allowed)
    if outside:
        raise ValueError(f"CPU {outside[0]} is not one this host lets us use", f"give CPUs from {format_cpus(allowed)}")
    return frozenset(cpus)


def format_cpus(cpus: frozenset[int]) -> str:
    """Give a CPU set as a list such as `0-1,3`."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def pin(cpus: frozenset[int]) -> None:
    """Give nothing: keep the calling thread, and every thread and process it starts from now on, on `cpus`."""
    os.sched_setaffinity(0, cpus)


def control_file(root: Path) -> Path:
    """Give the file whose content is the slowdown in percent now in force."""
    return Path(root) / "faults" / "slowdown"


def slowdown_pct(root: Path) -> float:
    """Give the slowdown in force, in percent (0 when there is none)."""
    try:
        return max(0.0, float(control_file(root).read_text().strip() or 0))
    except (OSError, ValueError):
        return 0.0


def set_slowdown(root: Path, pct: float, props_file: Path | None = None) -> None:
    """Give nothing: slow the runners from the next shell command on by `pct` % (0: not at all).

    `props_file` (default ROOT/system/props.txt, the sandbox's) gets the getprop line of the setting.
    """
    if not 0 <= pct <= 1000:
        raise ValueError(f"slowdown {pct} % is out of range; give 0 to 1000")
    path = control_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, f"{pct:g}\n")
    props = props_file or Path(root) / "system" / "props.txt"
    if props.exists():
        lines = [ln for ln in props.read_text().splitlines(keepends=True) if not ln.startswith(f"[{SLOWDOWN_PROP}]:")]
        if pct > 0:
            lines.append(f"[{SLOWDOWN_PROP}]: [{pct:g}]\n")
        _replace(props, "".join(sorted(lines)))


def shell_env(env: Mapping[str, str], root: Path) -> dict[str, str]:
    """Give a shell command's environment with the slowdown in force (none: without the variable)."""
    out = {k: v for k, v in env.items() if k != SLOWDOWN_ENV}
    pct = slowdown_pct(root)
    if pct > 0:
        out[SLOWDOWN_ENV] = f"{pct:g}"
    return out


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def nice_file(root: Path) -> Path:
    """Give the file whose content is the nice value of the phone's shell commands."""
    return Path(root) / "faults" / "nice"


def set_nice(root: Path, nice: int) -> None:
    """Give nothing: run the phone's shell commands from the next one on at `nice` (-20 to 19)."""
    if not -20 <= nice <= 19:
        raise ValueError(f"nice {nice} is out of range; give -20 to 19")
    path = nice_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, f"{nice}\n")


def prioritise(pid: int, root: Path) -> None:
    """Give nothing: set the session (autogroup) and the process `pid` to the phone's nice value, if any."""
    try:
        nice = int(nice_file(root).read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if nice == 0:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w", encoding="ascii") as fh:
            fh.write(str(nice))
    except OSError:
        pass  # no autogroup scheduling here: the process nice below still counts
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass
