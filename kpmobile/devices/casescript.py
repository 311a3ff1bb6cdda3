"""One device round trip per case: the shell script that runs a case, and the parser of its stream.

The script, in one `adb shell`:
1. writes its own pid to the pid file (so that stopping the case during the cool-down ends it);
2. rests `rest_s`, then waits until the hottest thermal zone is below the limit, polling every
   `poll_s` for at most `max_wait_s`, and reports how long (from /proc/uptime: no forks);
3. takes the before-snapshot (thermal zones and the watched cores' cpufreq);
4. runs the runner under the core sampler (telemetry.monitored_script); its stdout is a section
   of the stream, its stderr is the shell's stderr, its exit code the shell's exit code;
5. takes the after-snapshot, the core samples and the result file, then the end line;
6. sends all of it in one `cat` (few adb packets, few acknowledgements) and removes the
   temporaries (pid, core samples, result file, gathered stream).

The stream is framed (kpmobile.devices.framing); `parse_case_stream` is pure, and tested on what
the real script prints under /bin/sh and through the virtual phone's shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from kpmobile.devices import telemetry
from kpmobile.devices.framing import Framer, Frames, parse_frames
from kpmobile.errors import ParseError

SECTIONS = ("wait", "before", "stdout", "rc", "after", "cores", "result")
_PLAUSIBLE_MC = (-30000, 150000)  # millidegrees; as telemetry._PLAUSIBLE_C


@dataclass(frozen=True)
class CaseFiles:
    """Where one case's files live on the device."""

    workdir: str  # the runner's working folder
    result: str  # the result file the runner writes
    pid: str  # the running process's pid (the script's during the cool-down, then the runner's)
    cores: str  # the core samples
    stream: str  # the framed stream, gathered on the phone and sent in one go

    @classmethod
    def beside(cls, workdir: str, result: str) -> CaseFiles:
        """Give the files of a case whose temporaries sit beside its result file."""
        return cls(workdir, result, f"{result}.pid", f"{result}.cores", f"{result}.stream")


@dataclass(frozen=True)
class Hooks:
    """Shell text a case runs around its parts (the battery sampler's, under --energy); no output."""

    after_wait: str = ""  # after the cool-down wait, before the before-snapshot (an idle baseline)
    before_run: str = ""  # just before the runner
    after_run: str = ""  # just after it


@dataclass(frozen=True)
class Cooling:
    """The cool-down before a case: a fixed rest, then a wait below the thermal limit."""

    limit_c: float = 45.0
    max_wait_s: float = 120.0
    rest_s: float = 0.0
    poll_s: float = 2.0


def hottest_script(limit_mc: int) -> str:
    """Give a shell function `hot` that succeeds while some plausible zone is at or above `limit_mc`
    millidegrees (degrees are scaled), leaving the hottest reading in $h; builtins only."""
    low, high = _PLAUSIBLE_MC
    return (
        "hot() { h=; for z in " + telemetry.THERMAL_DIR + "/thermal_zone*; do t=; "
        '{ read -r t < "$z/temp"; } 2>/dev/null; case "$t" in ""|*[!0-9-]*|-|*?-*) continue;; esac; '
        "[ $t -gt -1000 ] && [ $t -lt 1000 ] && t=$((t * 1000)); "
        f"[ $t -gt {low} ] && [ $t -lt {high} ] || continue; "
        '{ [ -z "$h" ] || [ $t -gt $h ]; } && h=$t; done; '
        f'[ -n "$h" ] && [ $h -ge {limit_mc} ]; }}'
    )


def _uptime(var: str) -> str:
    return f"read -r {var} _ < /proc/uptime 2>/dev/null || {var}=0"


def _wait_script(cooling: Cooling, files: CaseFiles) -> str:
    """Give the cool-down part: a `p` line per poll straight to the host (fd 3), so that a long wait
    is not a silent stream, which the host's timeout would take for a hung phone; then the uptimes,
    polls and hottest zone."""
    rest = f"sleep {cooling.rest_s:g}; " if cooling.rest_s > 0 else ""
    polls = max(0, int(cooling.max_wait_s / cooling.poll_s + 0.999)) if cooling.poll_s > 0 else 0
    return (
        f"echo $$ > {shlex.quote(files.pid)}; {_uptime('u0')}; {rest}{_uptime('u1')}; "
        f"{hottest_script(int(round(cooling.limit_c * 1000)))}; n=0; "
        f"while hot && [ $n -lt {polls} ]; do sleep {cooling.poll_s:g}; n=$((n + 1)); echo p >&3; done; "
        f"{_uptime('u2')}; "
        'echo "u $u0 $u1 $u2"; echo "polls $n"; echo "hottest_mc ${h:-?}"'
    )


def case_script(framer: Framer, argv: Sequence[str], files: CaseFiles, watched: Sequence[int],
                cooling: Cooling, interval_s: float = 0.2, hooks: Hooks = Hooks()) -> str:
    """Give the whole case as one shell script printing one framed stream (see the module doc), with
    `hooks` run (their output discarded) after the cool-down, before the runner and after it."""
    q = shlex.quote
    result_dir = files.result.rsplit("/", 1)[0] or "/"
    snapshot = telemetry.snapshot_script(watched)
    monitored = telemetry.monitored_script(argv, files.workdir, files.pid, files.cores, interval_s)
    sections = "; ".join([
        framer.command("wait", _wait_script(cooling, files)),
        *_hook(hooks.after_wait),
        framer.command("before", snapshot),
        *_hook(hooks.before_run),
        framer.header("stdout"),
        # The monitored runner ends with `exit RC`: a subshell keeps this script going. It gets no
        # fd 3 (the host's stream): a sampler's last `sleep` would hold the stream open after the
        # script ended, and adbd sends the exit status only once the stream's writers are gone.
        f"( {monitored} ) 3>&-; rc=$?; echo",
        *_hook(hooks.after_run),
        framer.command("rc", "echo $rc"),
        framer.command("after", snapshot),
    ])
    items = [("cores", q(files.cores)), ("result", q(files.result))]
    heads = [f"{files.stream}.{i}" for i in range(len(items) + 1)]
    temporaries = " ".join(q(f) for f in (files.result, files.cores, files.pid, files.stream, *heads))
    return "; ".join([
        # Builtins where they do: a fork costs milliseconds on a busy phone, next to every case.
        f"{{ [ -d {q(result_dir)} ] || mkdir -p {q(result_dir)}; }}",
        f"{{ [ -e {q(files.result)} ] || [ -e {q(files.cores)} ]; }} && rm -f {q(files.result)} {q(files.cores)}",
        # The sections gather in a file and go out in one `cat`: every write to adb is a packet the
        # host must acknowledge before the next one, a round trip each over USB.
        f"{{ {sections}; }} 3>&1 > {q(files.stream)}",
        framer.files_at_once(q(files.stream), items, q(files.stream)),
        f"rm -f {temporaries}",
        "exit $rc",
    ])


def _hook(text: str) -> list[str]:
    """Give a hook's text as a part of the script, its output discarded (nothing for an empty hook)."""
    return [f"{{ {text.rstrip().rstrip(';')}; }} >/dev/null 2>&1 3>&-"] if text.strip() else []


@dataclass(frozen=True)
class CaseStream:
    """What one case's stream said."""

    returncode: int | None  # the runner's exit code (None when the stream was cut before it)
    stdout: bytes  # the runner's stdout
    result: bytes | None  # the result file, or None when the runner wrote none
    before: telemetry.Snapshot
    after: telemetry.Snapshot | None
    core_samples: str
    rest_s: float
    waited_s: float
    polls: int
    complete: bool
    start_c: float | None = None  # the hottest zone's reading that ended the cool-down wait (None: not read)
    frames: Frames = field(repr=False, default_factory=lambda: Frames({}))


def parse_case_stream(data: bytes, nonce: str) -> CaseStream:
    """Give the CaseStream of case_script's output; ParseError when it holds no case at all."""
    frames = parse_frames(data, nonce)
    if "wait" not in frames.sections:
        raise ParseError("the case's device stream has no cool-down section",
                         "the phone's shell did not run the case script; see the stored raw log")
    wait = _wait_fields(frames.text("wait"))
    rc_text = frames.text("rc").strip()
    return CaseStream(
        returncode=int(rc_text) if rc_text.lstrip("-").isdigit() else None,
        stdout=frames.sections.get("stdout") or b"",
        result=frames.sections.get("result"),
        before=telemetry.parse_snapshot(frames.text("before")),
        after=telemetry.parse_snapshot(frames.text("after")) if "after" in frames.sections else None,
        core_samples=frames.text("cores"),
        rest_s=wait["rest_s"],
        waited_s=wait["waited_s"],
        polls=int(wait["polls"]),
        complete=frames.complete,
        start_c=_start_c(frames.text("wait")),
        frames=frames,
    )


def _start_c(text: str) -> float | None:
    """Give the °C of the cool-down section's `hottest_mc` line (the reading the wait ended on), or None."""
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["hottest_mc"] and len(parts) == 2 and parts[1].lstrip("-").isdigit():
            return int(parts[1]) / 1000.0
    return None


def _wait_fields(text: str) -> dict[str, float]:
    """Give rest_s, waited_s and polls from the cool-down section (0 for what it lacks)."""
    out = {"rest_s": 0.0, "waited_s": 0.0, "polls": 0.0}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["u"] and len(parts) == 4:
            try:
                u0, u1, u2 = (float(p) for p in parts[1:])
            except ValueError:
                continue
            out["rest_s"], out["waited_s"] = round(max(0.0, u1 - u0), 2), round(max(0.0, u2 - u1), 2)
        elif parts[:1] == ["polls"] and len(parts) == 2 and parts[1].isdigit():
            out["polls"] = float(parts[1])
    return out
