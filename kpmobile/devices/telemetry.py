"""What a phone's kernel says while it benchmarks: thermal zones, big-core cpufreq, and the cores
a runner process actually ran on (/proc/PID/stat field 39).

Everything goes through `android.Phone.shell`; the scripts use shell builtins (`read`, `case`)
inside their loops so that sampling forks as little as possible next to the runner. Parsing is
pure and tested on text.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kpmobile.errors import DeviceError

THERMAL_DIR = "/sys/class/thermal"
CPU_DIR = "/sys/devices/system/cpu"
THROTTLE_DROP = 0.15  # a max-frequency drop larger than this during a case is throttling
CORE_MISMATCH_SHARE = 0.2  # more samples than this outside the expected cores is a binding mismatch
_PLAUSIBLE_C = (-30.0, 150.0)  # zones outside this range report nonsense (disabled sensors, -273)
# A process's children into $k: /proc/PID/task/PID/children where the kernel has it (a builtin
# `read`: no fork; the file has no final newline, so read's status says nothing), else pgrep -P.
_CHILDREN = ("k=; {{ read -r k < /proc/{pid}/task/{pid}/children; }} 2>/dev/null; "
             "[ -n \"$k\" ] || [ -e /proc/{pid}/task/{pid}/children ] || k=$(pgrep -P {pid} 2>/dev/null)")
_STAT_PROCESSOR = 39  # 1-based field of /proc/PID/stat: CPU number last executed on


class Shell(Protocol):
    """What telemetry needs of a phone: android.Phone.shell."""

    def shell(self, argv: Sequence[str] | str, timeout: float | None = 120) -> Any: ...


@dataclass(frozen=True)
class Snapshot:
    """Temperatures (°C by zone) and big-core frequencies (kHz) at one moment."""

    temps_c: dict[str, float] = field(default_factory=dict)
    cur_khz: dict[int, int] = field(default_factory=dict)
    max_khz: dict[int, int] = field(default_factory=dict)  # scaling_max_freq: lowered by thermal capping
    cpuinfo_max_khz: dict[int, int] = field(default_factory=dict)

    @property
    def hottest_c(self) -> float | None:
        """Give the hottest zone's temperature, or None when no zone could be read."""
        return max(self.temps_c.values()) if self.temps_c else None

    def to_json(self) -> dict[str, Any]:
        """Give the snapshot as plain JSON types."""
        return {
            "hottest_c": self.hottest_c, "temps_c": self.temps_c,
            "cur_khz": {str(k): v for k, v in self.cur_khz.items()},
            "max_khz": {str(k): v for k, v in self.max_khz.items()},
            "cpuinfo_max_khz": {str(k): v for k, v in self.cpuinfo_max_khz.items()},
        }


def snapshot_script(cores: Sequence[int]) -> str:
    """Give the shell script printing `T zone type temp` and `F core cur max cpuinfo_max` lines."""
    core_list = " ".join(str(int(c)) for c in cores)
    return (
        f"for z in {THERMAL_DIR}/thermal_zone*; do t=; ty=; "
        '{ read -r t < "$z/temp"; read -r ty < "$z/type"; } 2>/dev/null; '
        'echo "T ${z##*/} ${ty:-unknown} ${t:-?}"; done; '
        f"for c in {core_list}; do d={CPU_DIR}/cpu$c/cpufreq; cur=; mx=; cmx=; "
        '{ read -r cur < "$d/scaling_cur_freq"; read -r mx < "$d/scaling_max_freq"; '
        'read -r cmx < "$d/cpuinfo_max_freq"; } 2>/dev/null; '
        'echo "F $c ${cur:-?} ${mx:-?} ${cmx:-?}"; done; true'
    )


def parse_snapshot(text: str) -> Snapshot:
    """Give the Snapshot of snapshot_script's output (millidegrees or degrees; bad zones left out)."""
    temps: dict[str, float] = {}
    cur: dict[int, int] = {}
    mx: dict[int, int] = {}
    cmx: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "T":
            value = _number(parts[3])
            if value is None:
                continue
            celsius = value / 1000.0 if abs(value) >= 1000 else value
            if _PLAUSIBLE_C[0] < celsius < _PLAUSIBLE_C[1]:
                temps[f"{parts[1]}:{parts[2]}"] = round(celsius, 1)
        elif len(parts) == 5 and parts[0] == "F" and parts[1].isdigit():
            core = int(parts[1])
            for target, raw in ((cur, parts[2]), (mx, parts[3]), (cmx, parts[4])):
                value = _number(raw)
                if value is not None and value > 0:
                    target[core] = int(value)
    return Snapshot(temps, cur, mx, cmx)


def read_snapshot(phone: Shell, cores: Sequence[int], timeout: float = 30) -> Snapshot:
    """Give the phone's temperatures and the frequencies of `cores` now."""
    res = phone.shell(snapshot_script(cores), timeout=timeout)
    return parse_snapshot(res.stdout)


def throttled(before: Snapshot, after: Snapshot, drop: float = THROTTLE_DROP) -> list[int]:
    """Give the cores whose max frequency (scaling_max_freq, else scaling_cur_freq) fell more than `drop`."""
    out = []
    for core, was in before.max_khz.items():
        now = after.max_khz.get(core)
        if now is not None and was > 0 and now < was * (1 - drop):
            out.append(core)
    if not before.max_khz:
        for core, was in before.cur_khz.items():
            now = after.cur_khz.get(core)
            if now is not None and was > 0 and now < was * (1 - drop):
                out.append(core)
    return sorted(out)


def capped(snap: Snapshot, drop: float = THROTTLE_DROP) -> list[int]:
    """Give the cores whose max frequency (scaling_max_freq) sits more than `drop` below cpuinfo_max_freq."""
    return sorted(core for core, top in snap.cpuinfo_max_khz.items()
                  if top > 0 and snap.max_khz.get(core, top) < top * (1 - drop))


# core binding ------------------------------------------------------------------------------
def monitored_script(argv: Sequence[str], workdir: str, pid_file: str, cores_file: str,
                     interval_s: float = 0.2) -> str:
    """Give a shell script that runs `argv` in `workdir` (its output and exit code pass through),
    writing its pid to `pid_file` and, every `interval_s`, the /proc stat line of each of its
    threads and its children's threads to `cores_file`. The caller removes both files (the case
    script does, with the result file, in one `rm`)."""
    q = shlex.quote
    sample = (
        'for f in /proc/$pid/task/*/stat; do read -r l < "$f" && echo "$l"; done; '
        '[ -n "$kids" ] || { ' + _CHILDREN.format(pid="$pid") + '; kids=$k; }; '
        'for k in $kids; do for f in /proc/$k/task/*/stat; do read -r l < "$f" && echo "$l"; done; done'
    )
    # The sampler runs beside the runner and the shell waits on the runner itself, so the script
    # ends as soon as the runner does, not up to `interval_s` later.
    return (
        f"cd {q(workdir)} || exit 1; : > {q(cores_file)}; kids=; "
        f"{shlex.join(list(argv))} & pid=$!; echo $pid > {q(pid_file)}; "
        "( while { read -r s < /proc/$pid/stat; } 2>/dev/null; do "
        'case "$s" in *") Z "*|*") X "*) break;; esac; '
        f"{{ {sample}; }} >> {q(cores_file)} 2>/dev/null; "
        f"sleep {interval_s:g}; done ) </dev/null >/dev/null 2>&1 & mon=$!; "
        "wait $pid; rc=$?; kill $mon 2>/dev/null; exit $rc"
    )


def stop_script(pid_file: str) -> str:
    """Give a shell script that ends the process named in `pid_file` and its children (TERM, then KILL)."""
    q = shlex.quote(pid_file)
    return (
        f"p=; read -r p < {q} 2>/dev/null || exit 0; [ -n \"$p\" ] || exit 0; "
        + _CHILDREN.format(pid="$p") + "; kids=$k; "
        "kill -TERM $kids $p 2>/dev/null; sleep 0.5; kill -KILL $kids $p 2>/dev/null; "
        f"rm -f {q}; true"
    )


def stop_remote(phone: Shell, pid_file: str) -> None:
    """End the remote runner whose pid is in `pid_file`; quiet when it has already ended."""
    try:
        phone.shell(stop_script(pid_file), timeout=15)
    except DeviceError:
        pass


def parse_core_samples(text: str) -> Counter[int]:
    """Give how often each CPU appears as field 39 (processor) in /proc/PID/stat lines."""
    seen: Counter[int] = Counter()
    for line in text.splitlines():
        head, paren, rest = line.rpartition(")")
        if not paren or "(" not in head:
            continue
        fields = rest.split()
        index = _STAT_PROCESSOR - 3  # fields after "pid (comm)" start at field 3
        if len(fields) > index and fields[index].lstrip("-").isdigit():
            seen[int(fields[index])] += 1
    return seen


def expected_cores(power_mode: int, big: Sequence[int], all_cores: Sequence[int]) -> tuple[int, ...] | None:
    """Give the cores a runner in `power_mode` should run on (0 big, 1 little), or None when unchecked."""
    if power_mode == 0 and big:
        return tuple(sorted(big))
    if power_mode == 1 and big and all_cores:
        little = sorted(set(all_cores) - set(big))
        return tuple(little) or None
    return None  # 2 (all cores) and 3 (no bind) allow any core


def core_check(seen: Counter[int], expected: Sequence[int] | None,
               share: float = CORE_MISMATCH_SHARE) -> dict[str, Any]:
    """Give the binding check of sampled cores: samples, cores seen, share outside, and a mismatch verdict."""
    total = sum(seen.values())
    out: dict[str, Any] = {"samples": total, "seen": {str(k): v for k, v in sorted(seen.items())},
                           "expected": list(expected) if expected is not None else None}
    if expected is None or total == 0:
        out["outside_share"] = None
        out["mismatch"] = False
        return out
    outside = sum(v for core, v in seen.items() if core not in set(expected))
    out["outside_share"] = round(outside / total, 3)
    out["mismatch"] = outside / total > share
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
