"""What Paddle Lite's benchmark_bin says beyond its timings: usage printed instead of a run, aborts, the echo of
the flags it was given, and how it reads its outputs. Pure functions over text and RunRecords.

Facts about Paddle Lite's benchmark_bin (v2.13-rc, seen under qemu and in its sources):
- without `--input_shape` or `--backend` (or without any flag) it prints its usage on stdout, one
  `Must set --X option!` line per missing flag on stderr, and exits **0**;
- a batch other than the model's, or a truncated or wrong-version `.nb`, aborts (exit 134) with only
  `terminate called after throwing an instance of 'std::exception'` on stderr;
- it reads every output tensor as float, so integer outputs (PP-TinyPose's argmax) print as
  denormal garbage;
- its Runtime Info block echoes threads, power_mode, warmup and repeats, Model Info the input
  shape, Backend Info the backend and precision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from kpmobile.records import RunRecord

OWN_RUNNER_PREFIX = "kpmobile-"  # kpmobile's lite_runner and pipeline runner name themselves so
_MISSING_FLAG = re.compile(r"Must set --(?P<flag>\w+) option!")
_USAGE_MARKERS = ("For detailed usage info:", "If load the optimized model, set --optimized_model_file",
                  "No model path is set!")
_NO_MODEL_PATH = "No model path is set!"
_VERSION_NOTE = "benchmark_bin version: "
_PERF_HEADER = "======= Perf Info ======="
_STD_EXCEPTION = "std::exception"
_UNKNOWN_FLAG = re.compile(r"ERROR: unknown command line flag '(?P<flag>[^']+)'")
_MISSING_MODEL = re.compile(r"Mode file\[(?P<path>[^\]]*)\] not exist!")


def usage_reason(stdout: str, stderr: str) -> str | None:
    """Give the stored reason of a run that exited 0 having printed usage instead of timings, or None.

    The missing flags are named when the runner said which (`Must set --input_shape option!`).
    """
    if _PERF_HEADER in stdout:
        return None
    text = stdout + "\n" + stderr
    if not any(marker in text for marker in _USAGE_MARKERS) and not _MISSING_FLAG.search(text):
        return None
    missing = [f"--{m.group('flag')}" for m in _MISSING_FLAG.finditer(text)]
    if _NO_MODEL_PATH in text:
        missing.insert(0, "--optimized_model_file")
    what = f"missing {', '.join(dict.fromkeys(missing))}" if missing else "a flag it needs is missing"
    return (f"runner printed its usage and exited 0 without timings ({what}); "
            "check the runner command line in the stored raw log, then --resume")


def failure_hint(returncode: int, stdout: str, stderr: str) -> str | None:
    """Give a reason for a failed benchmark_bin run that names its likely causes, or None when the
    output holds nothing this module knows (then the generic exit reason applies)."""
    text = stdout + "\n" + stderr
    flag = _UNKNOWN_FLAG.search(text)
    if flag:
        return (f"runner exited {returncode}: it does not know the flag --{flag.group('flag')}; "
                "use a benchmark_bin that has it (v2.13-rc has every flag kpmobile passes)")
    model = _MISSING_MODEL.search(text)
    if model:
        return (f"runner exited {returncode}: model file {model.group('path')} not found on the device; "
                "--resume pushes it again")
    if returncode == 134 and _STD_EXCEPTION in text:
        return ("runner exited 134 (SIGABRT): std::exception while loading or running the model; likely "
                "an input shape or batch that does not match the model (--input_shape), or a corrupt, "
                "truncated or wrong-version .nb (convert it with the opt of the runner's Paddle Lite); "
                "fix it, then --resume")
    return None


def runner_version(record: RunRecord) -> str | None:
    """Give the version the runner printed (`benchmark_bin version: v2.13-rc` gives "v2.13-rc")."""
    if record.runner_version:
        return record.runner_version
    for note in record.notes:
        if note.startswith(_VERSION_NOTE):
            return note[len(_VERSION_NOTE):].strip() or None
    return None


def reads_outputs_as_float(record: RunRecord) -> bool:
    """Tell whether the runner that wrote `record` reads every output tensor as float.

    Paddle Lite's benchmark_bin does (`output_tensor->data<float>()`); kpmobile's own runners read
    each tensor in its dtype.
    """
    version = runner_version(record) or ""
    return record.format == "benchmark_bin" and not version.startswith(OWN_RUNNER_PREFIX)


def threads_applied(record: RunRecord) -> bool | None:
    """Give False when the log says threads were not applied, True when the runner echoed them, else None."""
    if record.threads_applied is not None:
        return record.threads_applied
    if any(note.lower().startswith("threads applied: no") for note in record.notes):
        return False
    return True if record.threads is not None else None


def input_shape(record: RunRecord) -> str | None:
    """Give the input shape the runner echoed in Model Info."""
    if record.input_shape:
        return record.input_shape
    for note in record.notes:
        if note.startswith("input_shape: "):
            return note[len("input_shape: "):].strip() or None
    return None


def asked_of(argv: Sequence[str]) -> dict[str, str]:
    """Give the `--flag=value` arguments of a runner command line, by flag name."""
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            out[key] = value
    return out


# flag -> how the echo of it is read from the record
_ECHOED = ("threads", "power_mode", "warmup", "repeats", "backend", "input_shape", "cpu_precision")


def echo_differences(asked: Mapping[str, str], record: RunRecord) -> dict[str, dict[str, str | None]]:
    """Give, per flag, what was asked and what the runner echoed, for each echo that differs.

    A flag not echoed at all counts as different (None), except cpu_precision, which defaults to fp32.
    """
    echoed: dict[str, str | None] = {
        "threads": None if record.threads is None else str(record.threads),
        "power_mode": None if record.power_mode is None else str(record.power_mode),
        "warmup": None if record.warmup is None else str(record.warmup),
        "repeats": None if record.repeats is None else str(record.repeats),
        "backend": record.backend,
        "input_shape": input_shape(record),
        "cpu_precision": record.cpu_precision,
    }
    out: dict[str, dict[str, str | None]] = {}
    for flag in _ECHOED:
        want = asked.get(flag, "fp32" if flag == "cpu_precision" else None)
        if want is None:
            continue
        got = echoed[flag]
        if flag == "input_shape" and got is not None:
            got = ",".join(got.replace(" ", "").split(","))
        if got != want:
            out[flag] = {"asked": want, "echoed": got}
    return out


MEMORY_BENCHMARK_BIN = "benchmark_bin memory monitor (--enable_memory_profile)"
MEMORY_OWN_PROCESS = "runner's own process: VmRSS after load (init), VmHWM (peak) (kpmobile lite_runner)"


def memory_source(record: RunRecord) -> str:
    """Give what a runner's init/peak MB measure: benchmark_bin's monitor, or kpmobile's runner's own VmHWM."""
    version = runner_version(record) or ""
    return MEMORY_OWN_PROCESS if version.startswith(OWN_RUNNER_PREFIX) else MEMORY_BENCHMARK_BIN


def checked_record(record: RunRecord, argv: Sequence[str]) -> tuple[RunRecord, dict[str, dict[str, str | None]]]:
    """Give the record with runner_version, input_shape and threads_applied as fields, and the flags
    whose echo differs from the command line `argv` (threads not echoed as asked: not applied)."""
    record = replace(record, runner_version=runner_version(record), input_shape=input_shape(record),
                     threads_applied=threads_applied(record))
    differs = echo_differences(asked_of(argv), record)
    if "threads" in differs:
        record = replace(record, threads_applied=False)
    return record, differs
