"""A virtual phone that behaves physically: battery current, heat and throttling follow the real CPU
use of what it runs.

Every tick (0.1 s) the phone reads `/proc/PID/stat` (and each thread's `schedstat`) of every process in
the sessions of its shell commands and turns the CPU time of their threads since the last tick into busy
cores, as if each thread had a core of its own (see `busy_cores`). Those fill the clusters big
first (as a scheduler places busy threads), and then:

- **battery:** power = idle + Σ per-core-type W × busy cores; current = power / voltage, written to
  `/sys/class/power_supply/battery/{current_now,voltage_now,status}` in the profile's (or the
  `--battery` switch's) vendor convention: `ua-negative` (µA, negative while discharging, as the
  kernel ABI says) or `ma-positive` (mA, positive while discharging, as some vendors do);
- **heat:** a first-order model, dT/dt = (ambient + R × (power − idle) − T) / τ, written to every
  thermal zone (the battery zone follows at a third of the rise);
- **throttling:** above the trip point the big cluster's `scaling_max_freq` and `scaling_cur_freq`
  drop to `throttle_ratio` of the maximum (restored below trip − hysteresis), and the runners are
  really slowed in proportion, through the test slowdown switch of `pacing` (the runners stretch each
  iteration to 1 / ratio of its time).

The pure pieces (cluster filling, power, the battery files' text, the thermal step) are functions;
`PhysicsLoop` is the thread that applies them to the sandbox. Each tick's interval is measured between
the reads of `/proc` themselves (not the loop's wake-ups, which a loaded host delays), and a thread's
busy share is not clipped per tick: either would bias the average draw down by the host's jitter.

For tests, the loop also appends every tick to the host-side `ROOT/physics/trace.tsv` (see
`TRACE_HEADER`; kept under `TRACE_MAX_BYTES`, the previous part in `trace.tsv.1`): the draw the
battery files showed and from when, on the clock of `/proc/uptime`, so that a sampler's mean can be
checked against the power it should have read.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kpmobile.config import Physics
from kpmobile.devices.virtual_phone import pacing
from kpmobile.records import CpuCluster

TICK_S = 0.1
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STATUSES = ("Discharging", "Charging", "Full", "Not charging")
CHARGE_A = 1.0  # what the charger pushes while "Charging"
TRACE_HEADER = "uptime_s\tpower_w\tbusy_cores\ttemp_c\tthrottled"  # uptime: CLOCK_BOOTTIME, as /proc/uptime
TRACE_MAX_BYTES = 4_000_000


def fill_clusters(busy_cores: float, clusters: Sequence[CpuCluster]) -> list[float]:
    """Give busy cores per cluster (in the given order): the fastest cluster fills first."""
    order = sorted(range(len(clusters)), key=lambda i: -clusters[i].max_khz)
    out = [0.0] * len(clusters)
    left = max(0.0, busy_cores)
    for i in order:
        out[i] = min(left, float(len(clusters[i].cores)))
        left -= out[i]
    return out


def power_w(phys: Physics, clusters: Sequence[CpuCluster], busy: Sequence[float]) -> float:
    """Give the phone's power: idle plus each cluster's busy cores times its core type's watts."""
    return phys.idle_w + sum(b * phys.core_w.get(cl.core_name, phys.default_core_w) for cl, b in zip(clusters, busy))


def battery_texts(draw_w: float, phys: Physics, status: str, vendor: str) -> dict[str, str]:
    """Give the power_supply/battery files for a phone drawing `draw_w` in that status and vendor convention."""
    volts = phys.voltage_v
    amps = draw_w / volts  # out of the battery
    if status == "Charging":
        amps -= CHARGE_A
    elif status in ("Full", "Not charging"):
        amps = 0.001  # USB feeds the phone; the battery barely moves
    if vendor == "ma-positive":
        current = f"{round(amps * 1e3)}"
    else:
        current = f"{round(-amps * 1e6)}"
    return {"type": "Battery", "present": "1", "status": status, "technology": "Li-poly", "capacity": "80",
            "current_now": current, "voltage_now": f"{round(volts * 1e6)}"}


def thermal_step(temp_c: float, power: float, phys: Physics, dt: float) -> float:
    """Give the temperature after `dt` seconds at `power` W, from `temp_c` (exact for a constant power)."""
    target = phys.ambient_c + phys.resistance_c_per_w * max(0.0, power - phys.idle_w)
    return target + (temp_c - target) * math.exp(-dt / phys.time_constant_s)


def throttle_state(temp_c: float, throttled: bool, phys: Physics) -> bool:
    """Give whether the big cluster is throttled after reading `temp_c` (with hysteresis)."""
    if temp_c >= phys.trip_c:
        return True
    if temp_c < phys.trip_c - phys.hysteresis_c:
        return False
    return throttled


def slowdown_pct(throttled: bool, phys: Physics) -> float:
    """Give the runner slowdown, in percent, matching the big cluster's frequency drop."""
    return (1.0 / phys.throttle_ratio - 1.0) * 100.0 if throttled else 0.0


Times = dict[tuple[int, int], tuple[int, int]]  # (tid, process start) -> (ns ran, ns waited for a CPU)


def read_thread_times(sessions: Iterable[int], proc: Path = Path("/proc")) -> Times:
    """Give the run and wait times so far of every thread of every process in `sessions`.

    The session comes from `/proc/PID/stat`; the times from each thread's `schedstat` (ns ran, ns
    waited on a run queue). Where schedstat is missing, the process's utime + stime stand in (waited 0).
    """
    wanted = set(sessions)
    out: Times = {}
    if not wanted:
        return out
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            out.update(_process_times(entry.path, wanted))
    return out


def _process_times(folder: str, wanted: set[int]) -> Times:
    try:
        with open(f"{folder}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return {}
    fields = text[text.rfind(")") + 2:].split()  # fields[0] is field 3 (state)
    if len(fields) <= 19 or int(fields[3]) not in wanted:  # field 6: session
        return {}
    start = int(fields[19])  # field 22: start time
    out: Times = {}
    try:
        for task in os.scandir(f"{folder}/task"):
            with open(f"{task.path}/schedstat", "rb") as fh:
                ran, waited = (int(v) for v in fh.read().split()[:2])
            out[(int(task.name), start)] = (ran, waited)
    except (OSError, ValueError):
        cpu_ns = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK  # fields 14, 15: utime, stime
        return {(-1, start): (cpu_ns, 0)}
    return out


WAIT_POWER = 4  # how steeply a thread's wait counts with how much of its life it was runnable


def busy_cores(before: Times, now: Times, dt: float, runnable: Mapping[tuple[int, int], float] | None = None) -> float:
    """Give the cores the threads kept busy over `dt` s, as on a phone with a core for each of them.

    A thread's run time counts as it is. Its wait for a host CPU (which the host's other load took)
    counts as work by `r ** WAIT_POWER`, where r is how much of its life so far it was runnable
    (`runnable`, else this tick's): a CPU-bound thread (r near 1) counts 1 however loaded the host is,
    while one that mostly sleeps (a shell loop, a `sleep` every 0.1 s) counts its run time alone; the
    waits of its wake-ups on a loaded host would otherwise read as a tenth of a core or more.
    """
    if dt <= 0:
        return 0.0
    tick = dt * 1e9
    total = 0.0
    for key, (ran, waited) in now.items():
        ran0, waited0 = before.get(key, (0, 0))
        d_ran, d_wait = max(0, ran - ran0), max(0, waited - waited0)
        r = runnable.get(key) if runnable is not None and key in runnable else (d_ran + d_wait) / tick
        # Not clipped at 1: a tick that reads long (the reads of /proc are not instantaneous) is
        # followed by one that reads short, and clipping only the long ones would bias the mean down.
        total += (d_ran + d_wait * min(1.0, max(0.0, r or 0.0)) ** WAIT_POWER) / tick
    return total


@dataclass
class State:
    """What the loop knows now (read by tests through the files it writes)."""

    temp_c: float
    throttled: bool = False
    power_w: float = 0.0
    busy_cores: float = 0.0


class PhysicsLoop:
    """The thread that keeps a sandbox's battery, thermal and cpufreq files in step with CPU use."""

    def __init__(self, root: Path, phys: Physics, clusters: Sequence[CpuCluster], big_cores: Sequence[int],
                 sessions: SessionSource, vendor: str | None = None, status: str = "Discharging") -> None:
        self.root, self.phys, self.clusters = Path(root), phys, tuple(clusters)
        self.big = tuple(big_cores) or max(clusters, key=lambda c: c.max_khz).cores
        self.sessions, self.vendor, self.status = sessions, vendor or phys.battery, status
        self.state = State(phys.ambient_c)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="physics")
        self._last: Times = {}
        self._read_at: float | None = None
        self._first: dict[tuple[int, int], tuple[float, int, int]] = {}  # thread -> (seen at, ran, waited) then
        self.trace = self.root / "physics" / "trace.tsv"

    def start(self) -> None:
        """Write the first files and start ticking."""
        self._write(self.state.power_w or self.phys.idle_w)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking (the files keep their last values)."""
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        _boost()
        self._read_at = None
        while not self._stop.wait(TICK_S):
            self.tick()

    def tick(self, dt: float | None = None) -> None:
        """Measure the CPU used since the last tick's reads (or over `dt` s) and update every file."""
        times = read_thread_times(self.sessions())
        read_at = _uptime()
        if dt is None:
            dt = read_at - self._read_at if self._read_at is not None else TICK_S
        self._read_at = read_at
        busy = busy_cores(self._last, times, dt, self._runnable(times, read_at, dt))
        self._last = times
        power = power_w(self.phys, self.clusters, fill_clusters(busy, self.clusters))
        temp = thermal_step(self.state.temp_c, power, self.phys, dt)
        throttled = throttle_state(temp, self.state.throttled, self.phys)
        changed = throttled != self.state.throttled
        self.state = State(temp, throttled, power, busy)
        self._write(power, freq=changed)
        self._append_trace(_uptime())

    def _runnable(self, times: Times, at: float, dt: float) -> dict[tuple[int, int], float]:
        """Give each thread's runnable share since it was first seen (threads seen for under a tick: none)."""
        out = {}
        for key, (ran, waited) in times.items():
            first = self._first.setdefault(key, (at - dt, *self._last.get(key, (0, 0))))
            if at - first[0] >= dt * 0.99:
                out[key] = ((ran - first[1]) + (waited - first[2])) / ((at - first[0]) * 1e9)
        for gone in set(self._first) - set(times):
            del self._first[gone]
        return out

    def _append_trace(self, at: float) -> None:
        """Append this tick's state, from `at` (the battery files show it from then on)."""
        try:
            self.trace.parent.mkdir(exist_ok=True)
            if self.trace.exists() and self.trace.stat().st_size > TRACE_MAX_BYTES:
                self.trace.replace(self.trace.with_name(self.trace.name + ".1"))
            new = not self.trace.exists()
            st = self.state
            with open(self.trace, "a") as fh:
                fh.write((TRACE_HEADER + "\n" if new else "")
                         + f"{at:.3f}\t{st.power_w:.4f}\t{st.busy_cores:.3f}\t{st.temp_c:.2f}\t{int(st.throttled)}\n")
        except OSError:
            pass  # a test aid: never stop the phone's physics over it

    def _write(self, power: float, freq: bool = True) -> None:
        if self.vendor != "none":
            folder = self.root / "sys" / "class" / "power_supply" / "battery"
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in battery_texts(power, self.phys, self.status, self.vendor).items():
                _replace(folder / name, text + "\n")
        self._write_temps()
        if freq:
            self._write_freq()

    def _write_temps(self) -> None:
        base = self.root / "sys" / "class" / "thermal"
        rise = self.state.temp_c - self.phys.ambient_c
        for zone in sorted(base.glob("thermal_zone*")):
            kind = (zone / "type").read_text().strip() if (zone / "type").exists() else ""
            temp = self.phys.ambient_c + (rise / 3 if kind == "battery" else rise)
            _replace(zone / "temp", f"{round(temp * 1000)}\n")

    def _write_freq(self) -> None:
        ratio = self.phys.throttle_ratio if self.state.throttled else 1.0
        base = self.root / "sys" / "devices" / "system" / "cpu"
        for core in self.big:
            folder = base / f"cpu{core}" / "cpufreq"
            top = int((folder / "cpuinfo_max_freq").read_text().strip())
            for name in ("scaling_max_freq", "scaling_cur_freq"):
                _replace(folder / name, f"{int(top * ratio)}\n")
        pacing.set_slowdown(self.root, slowdown_pct(self.state.throttled, self.phys))


class SessionSource:
    """The session ids of the phone's running shell commands (their runners stay in them)."""

    def __init__(self, pids: Mapping[int, object] | None = None) -> None:
        self._pids: dict[int, object] = dict(pids or {})
        self._lock = threading.Lock()

    def add(self, pid: int) -> None:
        """Remember a shell command's pid (its session id: shells start new sessions)."""
        with self._lock:
            self._pids[pid] = None

    def discard(self, pid: int) -> None:
        """Forget a finished shell command."""
        with self._lock:
            self._pids.pop(pid, None)

    def __call__(self) -> list[int]:
        with self._lock:
            return list(self._pids)


def _boost() -> None:
    """Give the calling thread a real-time priority where allowed (root), so that it ticks on time.

    The physics stands for hardware, which no load delays: a phone started with `--nice -20` (tests)
    whose runner keeps every host CPU busy left this thread (in the server's nice-0 autogroup) ticking
    every 2-3 s instead of 0.1 s, and a trip point crossed near a case's end then throttled only after
    the case's after-snapshot. Elsewhere it stays as it is.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))  # 0: this thread (Linux)
    except (AttributeError, OSError):
        pass


def _uptime() -> float:
    """Give the seconds on /proc/uptime's clock (CLOCK_BOOTTIME), which the phone's shell reads."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def read_trace(path: Path) -> list[tuple[float, float]]:
    """Give (uptime s, power W) of each tick in a physics trace file (bad lines skipped)."""
    out = []
    for line in Path(path).read_text().splitlines()[1:]:
        parts = line.split("\t")
        try:
            out.append((float(parts[0]), float(parts[1])))
        except (IndexError, ValueError):
            continue
    return out


def mean_power(trace: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Give the time-average of the battery's draw over [start, end] s: each tick's power holds from its
    time until the next tick's (None when the trace does not cover the window)."""
    if end <= start or not trace or trace[0][0] > start:
        return None
    total = 0.0
    for (t0, w), (t1, _) in zip(trace, [*trace[1:], (math.inf, 0.0)]):
        lo, hi = max(t0, start), min(t1, end)
        if hi > lo:
            total += w * (hi - lo)
    return total / (end - start)


def _replace(path: Path, text: str) -> None:
    """Write atomically, so that a reader on the phone sees the old or the new value, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
