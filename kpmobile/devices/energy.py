"""Energy per inference from the phone's battery: the sampler's shell text and the reading of its samples (pure).

The sampler runs inside the runner's own shell: an idle baseline of a few seconds first, then a
background loop beside the runner, both at about 10 Hz. In a sweep the baseline comes after the
case's cool-down wait (`case_hooks`: a phone just cooled is at rest; before the wait it may still be
hot from the last case), and the loop runs only around the runner. Each line is
`KPBAT PHASE UPTIME_S CURRENT VOLTAGE STATUS` read from the first readable battery of
`/sys/class/power_supply` (`battery`, then the names vendors use, then any of type Battery).

Vendors disagree on units and signs: current_now is µA on most kernels but mA on some, negative
while discharging on some and positive on others; voltage_now is µV, sometimes mV. They are
inferred from the magnitudes and the status, and the record says how they were read.
"""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from kpmobile.devices.casescript import Hooks
from kpmobile.records import Energy

MARK = "KPBAT"
BATTERY_DIRS = ("/sys/class/power_supply/battery", "/sys/class/power_supply/Battery",
                "/sys/class/power_supply/bms", "/sys/class/power_supply/main-battery")
ANY_SUPPLY = "/sys/class/power_supply/*"
EXTERNAL = ("Charging", "Full", "Not charging")  # statuses that mean USB power feeds the phone
CHARGING_HINT = ("unplug the phone's power: `adb shell dumpsys battery unplug` where supported (undo: "
                 "`dumpsys battery reset`), or a USB hub with per-port power switching")
NO_BATTERY_NOTE = "no readable battery current_now/voltage_now under /sys/class/power_supply: no energy figure"
UA_THRESHOLD = 10_000  # |current| >= this cannot be mA on a phone (10 A), so it is µA
UV_THRESHOLD = 100_000  # voltage_now >= this is µV (a cell is 3-5 V); >= 100 is mV


@dataclass(frozen=True)
class Sampler:
    """Shell pieces of the battery sampler, composable into one case script."""

    file: str  # where the samples go on the phone
    idle_s: float = 3.0
    interval_s: float = 0.1

    def setup(self) -> str:
        """Give text that finds the battery ($kpbat, empty when none) and defines the sample function."""
        q = shlex.quote
        dirs = " ".join(BATTERY_DIRS)
        named = "|".join(f"*/{d.rsplit('/', 1)[1]}" for d in BATTERY_DIRS)
        folder = self.file.rsplit("/", 1)[0] or "/"
        return (
            f"mkdir -p {q(folder)}; rm -f {q(self.file)} {q(self.monitor)}; kpbat=; for d in {dirs} {ANY_SUPPLY}; do "
            '[ -r "$d/current_now" ] && [ -r "$d/voltage_now" ] || continue; '
            f'case "$d" in {named}) kpbat=$d; break;; esac; '
            't=; read -r t < "$d/type" 2>/dev/null; [ "$t" = Battery ] && { kpbat=$d; break; }; done; '
            "kpb() { read -r u _ < /proc/uptime; c=; v=; s=; read -r c < \"$kpbat/current_now\"; "
            "read -r v < \"$kpbat/voltage_now\"; read -r s < \"$kpbat/status\"; "
            f"echo \"{MARK} $1 $u $c $v $s\"; }} 2>/dev/null; "
            f'echo "{MARK} dir $kpbat" > {q(self.file)}; '
        )

    @property
    def monitor(self) -> str:
        """Give the file holding the background loop's pid (so that any later part can stop it)."""
        return f"{self.file}.mon"

    def baseline(self) -> str:
        """Give text that takes the idle baseline (after setup; in the same shell or a child of it)."""
        count = max(1, round(self.idle_s / self.interval_s))
        return (f'if [ -n "$kpbat" ]; then n=0; while [ $n -lt {count} ]; do kpb idle; sleep {self.interval_s:g}; '
                f"n=$((n+1)); done >> {shlex.quote(self.file)}; fi; ")

    def start(self) -> str:
        """Give text that starts the background loop beside what follows (it ends with the shell that started it)."""
        q = shlex.quote
        return (f'if [ -n "$kpbat" ]; then kpbp=$$; ( while kill -0 $kpbp 2>/dev/null; do kpb run; '
                f"sleep {self.interval_s:g}; done ) </dev/null >> {q(self.file)} 2>/dev/null 3>&- & "
                f"echo $! > {q(self.monitor)}; fi; ")

    def halt(self) -> str:
        """Give text that ends the background loop (nothing when none runs)."""
        q = shlex.quote
        return (f"kpbm=; {{ read -r kpbm < {q(self.monitor)}; }} 2>/dev/null; "
                f'[ -n "$kpbm" ] && kill $kpbm 2>/dev/null; rm -f {q(self.monitor)}; ')

    def stop(self) -> str:
        """Give text that ends the loop and prints the samples on stderr after a marker line."""
        return (self.halt() + f'echo "--- {MARK} ---" >&2; '
                f"cat {shlex.quote(self.file)} >&2 2>/dev/null; rm -f {shlex.quote(self.file)}; ")

    def wrap(self, script: str) -> str:
        """Give `script` run between the baseline and the stop, in a subshell; its exit code passes through."""
        return self.setup() + self.baseline() + self.start() + f"( {script} ); kprc=$?; " + self.stop() + "exit $kprc"

    def wrap_case(self, script: str) -> str:
        """Give a case script whose hooks (`case_hooks`) take the samples, with the sampler's setup before
        it and the samples after it on stderr; its exit code passes through."""
        return self.setup() + f"( {script} ); kprc=$?; " + self.stop() + "exit $kprc"

    def case_hooks(self) -> Hooks:
        """Give the text a case script runs after its cool-down wait (the baseline), just before the
        runner (the loop's start), and after it (the loop's end)."""
        return Hooks(after_wait=self.baseline(), before_run=self.start(), after_run=self.halt())


@dataclass(frozen=True)
class BatterySample:
    """One line of the sampler."""

    phase: str  # idle | run
    uptime_s: float
    current: float | None  # raw, as the file says
    voltage: float | None
    status: str


def split_samples(stderr: str) -> tuple[str, str | None, list[BatterySample]]:
    """Give the stderr without the sampler's part, the battery folder (None: no sampler ran, "" none found), samples."""
    head, mark, tail = stderr.partition(f"--- {MARK} ---\n")
    if not mark:
        return stderr, None, []
    folder = ""
    samples: list[BatterySample] = []
    for line in tail.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) >= 2 and parts[:2] == [MARK, "dir"]:
            folder = parts[2] if len(parts) > 2 else ""
        elif len(parts) >= 3 and parts[0] == MARK and parts[1] in ("idle", "run"):
            samples.append(_sample(parts))
    return head, folder, samples


def _sample(parts: list[str]) -> BatterySample:
    def num(i: int) -> float | None:
        try:
            return float(parts[i])
        except (IndexError, ValueError):
            return None

    return BatterySample(parts[1], num(2) or 0.0, num(3), num(4), parts[5].strip() if len(parts) > 5 else "")


@dataclass(frozen=True)
class Units:
    """How the raw numbers were read."""

    current_unit: str  # "uA" | "mA"
    voltage_unit: str  # "uV" | "mV" | "V"
    discharge_sign: int  # -1: negative while discharging; +1: positive
    how: str  # the reasoning, for the record


def infer_units(samples: Sequence[BatterySample]) -> Units | None:
    """Give the units and sign the samples are in, or None when no sample has both numbers."""
    both = [s for s in samples if s.current is not None and s.voltage is not None]
    if not both:
        return None
    # On external power the battery current is near zero or the charger's: read units off the battery's own draw.
    dis = [s.current or 0.0 for s in both if s.status not in EXTERNAL]
    basis_values = dis or [s.current or 0.0 for s in both]
    mag = statistics.median(abs(c) for c in basis_values)
    volt = statistics.median(s.voltage or 0.0 for s in both)
    cu = "uA" if mag >= UA_THRESHOLD else "mA"
    vu = "uV" if volt >= UV_THRESHOLD else ("mV" if volt >= 100 else "V")
    signed = statistics.median(basis_values)
    sign = -1 if signed < 0 else 1
    basis = "while discharging" if dis else "while on external power (assumed discharge direction)"
    how = (f"current {cu} (median |current_now| {mag:g} {'>=' if cu == 'uA' else '<'} {UA_THRESHOLD}), "
           f"voltage {vu} (median voltage_now {volt:g}), "
           f"discharge is {'negative' if sign < 0 else 'positive'} (median {signed:g} {basis})")
    return Units(cu, vu, sign, how)


_SCALE = {"uA": 1e-6, "mA": 1e-3, "uV": 1e-6, "mV": 1e-3, "V": 1.0}


def power_w(sample: BatterySample, units: Units) -> float | None:
    """Give the power drawn from the battery in one sample (W; negative while it charges)."""
    if sample.current is None or sample.voltage is None:
        return None
    amps = sample.current * _SCALE[units.current_unit] * units.discharge_sign
    return amps * sample.voltage * _SCALE[units.voltage_unit]


def energy_of(folder: str | None, samples: Sequence[BatterySample], latency_ms: float | None) -> Energy:
    """Give the energy record of one case from its samples and mean latency (ms)."""
    run = [s for s in samples if s.phase == "run"]
    idle = [s for s in samples if s.phase == "idle"]
    if not folder:
        return Energy(len(run), len(idle), note=NO_BATTERY_NOTE)
    units = infer_units(samples)
    if units is None or len(run) < 2 or len(idle) < 2:
        return Energy(len(run), len(idle), battery=folder,
                      note=f"too few battery samples ({len(idle)} idle, {len(run)} during the run; need 2 each)")
    run_w = [w for s in run if (w := power_w(s, units)) is not None]
    idle_w = [w for s in idle if (w := power_w(s, units)) is not None]
    status = statistics.mode(s.status for s in samples) if samples else None
    charging = any(s.status in EXTERNAL for s in samples)
    mean, base = statistics.fmean(run_w), statistics.fmean(idle_w)
    energy, note = _figure(mean, base, latency_ms)
    trace = tuple((s.uptime_s, w) for s in run if (w := power_w(s, units)) is not None)
    return Energy(len(run_w), len(idle_w), mean, base, energy, latency_ms, folder, status, units.how,
                  ("charging",) if charging else (), note, CHARGING_HINT if charging else None, trace)


def _figure(mean_w: float, idle_w: float, latency_ms: float | None) -> tuple[float | None, str | None]:
    if latency_ms is None:
        return None, "no mean latency: no energy per inference"
    if mean_w <= idle_w:
        return None, f"mean power {mean_w:.3f} W did not exceed the idle {idle_w:.3f} W: no energy per inference"
    return (mean_w - idle_w) * latency_ms, None
