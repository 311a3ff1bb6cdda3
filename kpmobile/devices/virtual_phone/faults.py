"""Runner faults of the virtual phone, switched at run time through a control file in its ROOT.

`ROOT/faults/runner` holds one mode (a second word is its argument); the phone reads it for every
shell command, so a test can inject a fault and remove it again without restarting the phone.
While a mode is set, each runner invocation (a program under /data/local/tmp/kpmobile/bin/ called
with `--` flags) runs through a small shim that plays the fault:

- ``crash``: the runner dies of SIGSEGV (exit 139), as an ARM .nb does on the x86 runtime;
- ``hang``: the runner sleeps forever in a session of its own, so that only killing the pid the
  host recorded ends it (the phone's own clean-up of the shell's process group does not reach it);
  its pid goes to ``ROOT/faults/hang.pid``;
- ``garbage``: the runner exits 0 having written noise as its log and result file;
- ``truncate``: the real runner runs, then its result file is cut to its first 40 %;
- ``corrupt-nb``: the model file on the device is overwritten with noise before the real runner runs;
- ``swap-nb FILE``: the model file on the device is replaced by FILE before the real runner runs;
- ``input-shape SHAPE``: the real runner runs with ``--input_shape=SHAPE`` instead of what was asked
  (e.g. a batch the model does not have);
- ``drop-flag NAME``: the real runner runs without its ``--NAME=...`` argument.
"""

from __future__ import annotations

import re
from pathlib import Path

RUNNER_FAULTS = ("none", "crash", "hang", "garbage", "truncate", "corrupt-nb", "swap-nb", "input-shape",
                 "drop-flag")
_RUNNER_BIN = "data/local/tmp/kpmobile/bin"

_SHIM = r"""#!/bin/sh
# kpmobile virtual phone: plays the runner fault named in {control}
real="$1"; shift
mode=; arg=
read -r mode arg < {control} 2>/dev/null
result=; model=
for a in "$@"; do
  case "$a" in
    --result_path=*) result="${{a#--result_path=}}" ;;
    --optimized_model_file=*) model="${{a#--optimized_model_file=}}" ;;
  esac
done
case "$mode" in
  crash)
    echo "======= Opt Info ======="
    kill -SEGV $$ ;;
  hang)
    echo $$ > {hang_pid}
    exec setsid sleep 3600 </dev/null >/dev/null 2>&1 ;;
  garbage)
    noise='Time(unit: ms): ## garbage ## avg = nan... ###### \x00\x01 ======= Perf'
    [ -n "$result" ] && printf '%s\n' "$noise" > "$result"
    printf '%s\n' "$noise"
    exit 0 ;;
  truncate)
    "$real" "$@"; rc=$?
    if [ -n "$result" ] && [ -f "$result" ]; then
      size=$(wc -c < "$result"); head -c $((size * 2 / 5)) "$result" > "$result.cut" && mv "$result.cut" "$result"
    fi
    exit $rc ;;
  corrupt-nb)
    [ -n "$model" ] && head -c 65536 /dev/urandom > "$model"
    exec "$real" "$@" ;;
  swap-nb)
    [ -n "$model" ] && cp "$arg" "$model"
    exec "$real" "$@" ;;
  input-shape|drop-flag)
    n=$#
    while [ "$n" -gt 0 ]; do
      a="$1"; shift; n=$((n - 1))
      case "$mode:$a" in
        input-shape:--input_shape=*) set -- "$@" "--input_shape=$arg" ;;
        drop-flag:--"$arg"=*) ;;
        *) set -- "$@" "$a" ;;
      esac
    done
    exec "$real" "$@" ;;
esac
exec "$real" "$@"
"""


def drop_file(root: Path) -> Path:
    """Give the file whose presence makes the phone vanish at the next shell or sync service."""
    return Path(root) / "faults" / "drop"


def drop_requested(root: Path) -> bool:
    """Tell whether the test asked the phone to vanish (as --disconnect-after does, but at run time)."""
    return drop_file(root).exists()


def control_file(root: Path) -> Path:
    """Give the file whose first line names the runner fault now in force."""
    return Path(root) / "faults" / "runner"


def set_runner_fault(root: Path, mode: str, arg: str = "") -> None:
    """Give nothing: put `mode` (one of RUNNER_FAULTS) in force from the next runner invocation on."""
    if mode not in RUNNER_FAULTS:
        raise ValueError(f"unknown runner fault '{mode}'; use one of: {', '.join(RUNNER_FAULTS)}")
    path = control_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{mode} {arg}".rstrip() + "\n")
    tmp.replace(path)


def runner_fault(root: Path) -> str:
    """Give the runner fault in force ("none" when there is no control file)."""
    try:
        words = control_file(root).read_text().split()
    except OSError:
        return "none"
    return words[0] if words and words[0] in RUNNER_FAULTS else "none"


def wrap_runner(root: Path, command: str) -> str:
    """Give the (already sandbox-rewritten) command with each runner invocation sent through the
    fault shim, or the command unchanged while no fault is in force."""
    if runner_fault(root) == "none":
        return command
    shim = _write_shim(Path(root))
    invocation = re.compile(re.escape(f"{root}/{_RUNNER_BIN}/") + r"[\w.+-]+(?=\s+--)")
    return invocation.sub(lambda m: f"{shim} {m.group(0)}", command)


def _write_shim(root: Path) -> Path:
    shim = root / "system" / "bin" / "kp-runner-fault"
    text = _SHIM.format(control=control_file(root), hang_pid=root / "faults" / "hang.pid")
    if not shim.exists() or shim.read_text() != text:
        shim.parent.mkdir(parents=True, exist_ok=True)
        tmp = shim.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(shim)
    return shim
