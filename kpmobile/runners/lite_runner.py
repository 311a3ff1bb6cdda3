"""kpmobile's Paddle Lite runner for x86_64 devices (the virtual phone) and the host.

It takes benchmark_bin's flags and prints benchmark_bin's output (Paddle Lite
``lite/api/tools/benchmark/benchmark.cc``), so one parser reads both. It needs stdlib, numpy and
paddlelite only: the orchestrator pushes one self-contained file onto the virtual phone and runs
it there, built at push time from this one by splicing in the stdlib-only ``nbfile`` (the .nb
header) and ``runner_common`` (flags, exit codes, main) and prepending a ``#!<python>`` line
(``kpmobile.runners.splice``, called by ``kpmobile.runners.executable_runner``).

Differences from benchmark_bin, all visible in the output:
- ``benchmark_bin version:`` names this runner and the paddlelite wheel.
- The x86 MobileConfig has no set_threads / set_power_mode: Runtime Info prints the requested
  values, each followed by a ``<flag> applied: no (...)`` line.
- The result file is appended to on every invocation (benchmark_bin v2.11+ truncates it on its
  first write), so one file collects many runs.
- The result file (not stdout) gets one more line at the end of Perf Info, ``per-iteration(ms):``
  and every timed iteration's time, which kpmobile's parser reads as the run's samples.
- With ``KPMOBILE_SLOWDOWN_PCT`` in its environment (only the virtual phone's test-only ``--slowdown``
  sets it) each iteration is stretched by a measured wait to (1 + PCT/100) times its run time.
- Memory usage is VmRSS after the predictor is created (init) and VmHWM at the end (peak), from
  /proc/self/status; one ``cpu usage ratio:`` line covers the whole monitored time.

Before loading, the .nb header is checked (missing file, not a .nb, truncated, ARM kernels): such a
model exits with EXIT_MODEL and one line on stderr instead of paddlelite's abort (134) or a
segfault or silent zeros. Loading and running happen in a forked child, so a crash inside
paddlelite still ends in one line on stderr and EXIT_MODEL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from kpmobile.nbfile import NbFormatError, NbInfo, read_nb
from kpmobile.runners.runner_common import (
    EXIT_FAILED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    RunnerFailure,
    _usage_error,
    exit_now,
    format_samples,
    import_numpy,
    paced,
    parse_gflags,
    run_main,
)

# When the imports above were done: the boot clock, and the CPU this process had used by then.
_FIRST_CLOCKS = (time.clock_gettime(time.CLOCK_BOOTTIME), time.process_time())

RUNNER_VERSION = "0.1"
RUNNER_NAME = "kpmobile-lite-runner"

RUNNABLE_TARGETS = frozenset({"host", "x86", "any"})
_PROPS = (
    ("Brand", "ro.product.vendor.brand"),
    ("Device", "ro.product.vendor.device"),
    ("Model", "ro.product.vendor.model"),
    ("Android Version", "ro.build.version.release"),
    ("Android API Level", "ro.build.version.sdk"),
)


# ---------------------------------------------------------------------------------------------
# flags, as gflags takes them: --name=value, --name value, -name=value, --bool, --nobool

@dataclass
class Flags:
    """benchmark_bin's flags that this runner honours (same names, same defaults)."""

    optimized_model_file: str = ""
    input_shape: str = ""
    input_data_path: str = ""
    threads: int = 1
    power_mode: int = 0
    warmup: int = 0
    repeats: int = 1
    run_delay: float = -1.0
    result_path: str = ""
    backend: str = ""
    cpu_precision: str = "fp32"
    enable_memory_profile: bool = False
    memory_check_interval_ms: int = 5  # accepted, unused: VmHWM is already a high-water mark
    print_output_dtype: bool = False  # kpmobile's own: an `output tensor N dtype:` line per output
    shapes: list[list[int]] = field(default_factory=list)


_FLAG_TYPES: dict[str, type] = {
    "optimized_model_file": str, "input_shape": str, "input_data_path": str, "threads": int,
    "power_mode": int, "warmup": int, "repeats": int, "run_delay": float, "result_path": str,
    "backend": str, "cpu_precision": str, "enable_memory_profile": bool, "memory_check_interval_ms": int,
    "print_output_dtype": bool,
}
_UNSUPPORTED = {
    "uncombined_model_dir": "converts Paddle models", "model_file": "converts Paddle models",
    "param_file": "converts Paddle models", "validation_set": "evaluates accuracy",
    "config_path": "evaluates accuracy",
}


def parse_flags(argv: list[str]) -> Flags:
    """Give the Flags of a benchmark_bin-style command line; RunnerFailure(EXIT_USAGE) if bad."""
    flags = Flags()
    values = parse_gflags(argv, _FLAG_TYPES, _UNSUPPORTED, "this runner takes --optimized_model_file=<x86 .nb>")
    for name, value in values.items():
        setattr(flags, name, value)
    _check_flags(flags)
    return flags


def parse_shapes(text: str) -> list[list[int]]:
    """Give the input shapes of `1,3,128,96:1,2` (inputs separated by ':'); ValueError if bad."""
    shapes = []
    for part in text.split(":"):
        dims = [int(d) for d in part.strip().split(",")]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(part)
        shapes.append(dims)
    return shapes


def _check_flags(flags: Flags) -> None:
    """Give nothing when the flags are usable; fill flags.shapes; RunnerFailure(EXIT_USAGE) if not."""
    if not flags.optimized_model_file:
        raise _usage_error("--optimized_model_file is required (an x86 .nb from paddle_lite_opt)")
    if not flags.input_shape:
        raise _usage_error("Must set --input_shape option!")
    if not flags.backend:
        raise _usage_error("Must set --backend option!")
    if flags.backend != "x86":
        raise _usage_error(f"--backend={flags.backend}: this runner runs the x86 backend only (--backend=x86)")
    try:
        flags.shapes = parse_shapes(flags.input_shape)
    except ValueError:
        raise _usage_error(f"--input_shape={flags.input_shape}: expected e.g. 1,3,128,96 "
                           "(inputs separated by ':')") from None
    if flags.input_data_path and len(flags.input_data_path.split(":")) != len(flags.shapes):
        raise _usage_error(f"Option invalid: --input_data_path={flags.input_data_path}  "
                           f"--input_shape={flags.input_shape} The num of input tensors is ambiguous.")
    if flags.threads < 1:
        raise _usage_error(f"--threads={flags.threads}: expected 1 or more")
    if flags.power_mode not in (0, 1, 2, 3):
        raise _usage_error(f"--power_mode={flags.power_mode}: expected 0, 1, 2 or 3")
    if flags.warmup < 0 or flags.repeats < 1:
        raise _usage_error(f"--warmup={flags.warmup} --repeats={flags.repeats}: expected warmup >= 0, "
                           "repeats >= 1")
    if flags.cpu_precision not in ("fp32", "fp16"):
        raise _usage_error(f"--cpu_precision={flags.cpu_precision}: expected fp32 or fp16")


# ---------------------------------------------------------------------------------------------
# the .nb header (kpmobile.nbfile) and whether this runner can run its kernels

def inspect_nb(path: str) -> NbInfo:
    """Give the header facts of a .nb file; RunnerFailure(EXIT_MODEL) when it is not a usable x86 .nb."""
    try:
        info = read_nb(path)
    except NbFormatError as exc:
        raise RunnerFailure(exc.message, EXIT_MODEL) from None
    foreign = [t for t in info.targets if t not in RUNNABLE_TARGETS]
    if foreign:
        raise RunnerFailure(f"{path} was converted for {'/'.join(foreign)} (kernel targets: "
                            f"{', '.join(info.targets)}); this runner runs x86 .nb models only: convert "
                            "with --valid_targets=x86", EXIT_MODEL)
    return info


# ---------------------------------------------------------------------------------------------
# the report, formatted as benchmark_bin formats it

@dataclass
class OutputInfo:
    """One output tensor's statistics as benchmark_bin prints them."""

    shape: list[int]
    elem_num: int
    mean: float
    std: float
    dtype: str = ""  # printed only with --print_output_dtype (benchmark_bin has no such line)


@dataclass
class Report:
    """Everything one run prints."""

    model_file: str
    input_data_path: str
    input_shape: str
    outputs: list[OutputInfo]
    version: str
    threads: int
    power_mode: int
    warmup: int
    repeats: int
    run_delay: float
    result_path: str
    backend: str
    cpu_precision: str
    init_ms: float
    first_ms: float
    min_ms: float
    max_ms: float
    avg_ms: float
    device: list[tuple[str, str]] | None = None
    memory_mb: tuple[float, float] | None = None
    not_applied: list[str] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)  # the timed iterations, in order


def _g(value: float, precision: int) -> str:
    """Give value as a C++ stream prints a double by default with that precision (%g)."""
    return f"{value:.{precision}g}"


def format_report(report: Report) -> str:
    """Give the text benchmark_bin writes for one run: the Info blocks, from the leading blank line."""
    out = [f"output tensor num: {len(report.outputs)}"]
    for index, tensor in enumerate(report.outputs):
        out.append(f"\n--- output tensor {index} ---\n")
        out.append("output shape(NCHW): " + "".join(f"{d} " for d in tensor.shape) + "\n")
        out.append(f"output tensor {index} elem num: {tensor.elem_num}\n")
        if tensor.dtype:
            out.append(f"output tensor {index} dtype: {tensor.dtype}\n")
        out.append(f"output tensor {index} mean value: {_g(tensor.mean, 6)}\n")
        out.append(f"output tensor {index} standard deviation: {_g(tensor.std, 6)}\n")
    text = []
    if report.device is not None:
        text.append("\n======= Device Info =======\n")
        text.extend(f"{key}: {value}\n" for key, value in report.device)
    text.append("\n======= Model Info =======\n")
    text.append(f"optimized_model_file: {report.model_file}\n")
    text.append(f"input_data_path: {report.input_data_path or 'All 1.f'}\n")
    text.append(f"input_shape: {report.input_shape}\n")
    text.append("".join(out))
    text.append("\n======= Runtime Info =======\n")
    text.append(f"benchmark_bin version: {report.version}\n")
    text.append(f"threads: {report.threads}\n")
    text.extend(f"{line}\n" for line in report.not_applied if line.startswith("threads "))
    text.append(f"power_mode: {report.power_mode}\n")
    text.extend(f"{line}\n" for line in report.not_applied if not line.startswith("threads "))
    text.append(f"warmup: {report.warmup}\n")
    text.append(f"repeats: {report.repeats}\n")
    if report.run_delay > 0:
        text.append(f"run_delay(sec): {_g(report.run_delay, 3)}\n")
    text.append(f"result_path: {report.result_path}\n")
    text.append("\n======= Backend Info =======\n")
    text.append(f"backend: {report.backend}\n")
    text.append(f"cpu precision: {report.cpu_precision}\n")
    text.append("\n======= Perf Info =======\n")
    text.append("Time(unit: ms):\n")
    for key, value in (("init  ", report.init_ms), ("first ", report.first_ms), ("min   ", report.min_ms),
                       ("max   ", report.max_ms), ("avg   ", report.avg_ms)):
        text.append(f"{key}= {value:<12.3f}\n")
    if report.memory_mb is not None:
        text.append("\nMemory Usage(unit: MB):\n")
        text.append(f"init  = {report.memory_mb[0]:<12.3f}\n")
        text.append(f"peak  = {report.memory_mb[1]:<12.3f}\n")
    return "".join(text)


# ---------------------------------------------------------------------------------------------
# the machine

def device_info() -> list[tuple[str, str]] | None:
    """Give the Device Info lines from getprop on an Android-like system, None where there is none."""
    getprop = shutil.which("getprop")
    if getprop is None:
        return None
    lines = []
    for key, prop in _PROPS:
        try:
            done = subprocess.run([getprop, prop], capture_output=True, text=True, timeout=10, check=False)
            value = done.stdout.splitlines()[0] if done.stdout else ""
        except (OSError, subprocess.SubprocessError):
            value = ""
        lines.append((key, value.strip()))
    return lines


def proc_status_kb(key: str) -> int | None:
    """Give a `VmRSS`-style field of /proc/self/status in kB, None where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def paddlelite_version(predictor: Any = None) -> str:
    """Give the paddlelite wheel's version, e.g. 2.13rc0 (the predictor's tag if no metadata)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("paddlelite")
    except (ImportError, PackageNotFoundError):
        return str(predictor.get_version()) if predictor is not None else "unknown"


def read_input_file(path: str, count: int) -> list[float]:
    """Give the first `count` whitespace-separated numbers of a text file (benchmark_bin's `fs >>`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            words = fh.read().split()
    except OSError as exc:
        raise RunnerFailure(f"Open input image {path} error: {exc.strerror}", EXIT_USAGE) from None
    if len(words) < count:
        raise RunnerFailure(f"input data {path} holds {len(words)} values, the input needs {count}",
                            EXIT_USAGE)
    try:
        return [float(w) for w in words[:count]]
    except ValueError:
        raise RunnerFailure(f"input data {path} holds something that is not a number", EXIT_USAGE) from None


# ---------------------------------------------------------------------------------------------
# the benchmark (in the child process)

def run_benchmark(flags: Flags, phase: Any = None) -> Report:
    """Give the Report of one benchmark of flags.optimized_model_file; `phase(name)` marks progress."""
    np = import_numpy()
    mark = phase or (lambda name: None)
    from paddlelite import lite

    monitor_start = (time.perf_counter(), _cpu_seconds())
    if flags.enable_memory_profile:
        _say("start monitoring memory!")

    mark("loading")
    start = time.perf_counter()
    config = lite.MobileConfig()
    config.set_model_from_file(flags.optimized_model_file)
    predictor = lite.create_paddle_predictor(config)
    init_ms = (time.perf_counter() - start) * 1000.0
    init_kb = proc_status_kb("VmRSS")

    mark("setting inputs of")
    names = predictor.get_input_names()
    if len(names) != len(flags.shapes):
        raise _usage_error(f"--input_shape={flags.input_shape} gives {len(flags.shapes)} input(s), "
                           f"the model has {len(names)} ({', '.join(names)})")
    paths = flags.input_data_path.split(":") if flags.input_data_path else []
    for index, shape in enumerate(flags.shapes):
        count = 1
        for dim in shape:
            count *= dim
        if paths:
            data = np.asarray(read_input_file(paths[index], count), dtype=np.float32).reshape(shape)
        else:
            data = np.ones(shape, dtype=np.float32)  # benchmark_bin: "All 1.f"
        tensor = predictor.get_input(index)
        tensor.from_numpy(np.ascontiguousarray(data))
        if data.any() and not np.asarray(tensor.numpy()).any():
            raise RunnerFailure("paddlelite wrote zeros into the input tensor (numpy/paddlelite mismatch)",
                                EXIT_FAILED)

    mark("running")
    run_ms: list[float] = []
    for _ in range(flags.warmup + flags.repeats):
        start = time.perf_counter()
        predictor.run()
        paced(start)
        run_ms.append((time.perf_counter() - start) * 1000.0)
        if flags.run_delay > 0:
            time.sleep(flags.run_delay / 1000.0)  # benchmark_bin: timer.SleepInMs(FLAGS_run_delay)

    mark("reading outputs of")
    outputs = []
    for index in range(len(predictor.get_output_names())):
        tensor = predictor.get_output(index)
        values = np.asarray(tensor.numpy())
        shape = [int(d) for d in tensor.shape()]
        flat = values.astype(np.float64).ravel()
        mean = float(flat.mean()) if flat.size else float("nan")
        std = float(np.sqrt(np.mean((flat - mean) ** 2))) if flat.size else float("nan")
        outputs.append(OutputInfo(shape=shape, elem_num=int(flat.size), mean=mean, std=std,
                                  dtype=str(values.dtype) if flags.print_output_dtype else ""))

    memory = None
    if flags.enable_memory_profile:
        wall = time.perf_counter() - monitor_start[0]
        ratio = (_cpu_seconds() - monitor_start[1]) / wall * 100.0 if wall > 0 else 0.0
        _say(f"cpu usage ratio: {ratio:.1f}%")
        peak_kb = proc_status_kb("VmHWM")
        if init_kb is None or peak_kb is None:
            _say("Getting memory usage isn't supported on this platform!")
        else:
            memory = (init_kb / 1024.0, peak_kb / 1024.0)
        _say("stop monitoring memory!")

    timed = run_ms[flags.warmup:]
    return Report(
        model_file=flags.optimized_model_file,
        input_data_path=flags.input_data_path,
        input_shape=flags.input_shape,
        outputs=outputs,
        version=f"{RUNNER_NAME} {RUNNER_VERSION} (paddlelite {paddlelite_version(predictor)})",
        threads=flags.threads,
        power_mode=flags.power_mode,
        warmup=flags.warmup,
        repeats=flags.repeats,
        run_delay=flags.run_delay,
        result_path=flags.result_path,
        backend=flags.backend,
        cpu_precision=flags.cpu_precision,
        init_ms=init_ms,
        first_ms=run_ms[0],
        min_ms=min(timed),
        max_ms=max(timed),
        avg_ms=sum(timed) / len(timed),
        device=device_info(),
        memory_mb=memory,
        samples_ms=timed,
        not_applied=[
            "threads applied: no (x86 MobileConfig has no set_threads)",
            "power_mode applied: no (x86 MobileConfig has no set_power_mode)",
        ],
    )


def _cpu_seconds() -> float:
    """Give this process's user + system CPU time in seconds."""
    times = os.times()
    return times.user + times.system


def _say(line: str) -> None:
    """Print one line to stdout now (a crash later must not lose it)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def benchmark_and_report(flags: Flags, phase: Any = None) -> int:
    """Give the exit code after running the benchmark, printing it and appending it to result_path."""
    report = run_benchmark(flags, phase)
    text = format_report(report)
    sys.stdout.write(text + "\n")  # benchmark_bin: std::cout << ss.str() << std::endl
    sys.stdout.flush()
    if flags.result_path:
        try:
            with open(flags.result_path, "a", encoding="utf-8") as fh:
                fh.write(text + format_samples(report.samples_ms))
        except OSError as exc:
            raise RunnerFailure(f"Fail to open result file: {flags.result_path} ({exc.strerror})",
                                EXIT_FAILED) from None
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# supervision: paddlelite aborts or segfaults on bad input; the child takes the blow

_PADDLE_PHASES = ("loading", "setting inputs of", "running", "reading outputs of")


def _child(flags: Flags, parent: int, err_fd: int, status_fd: int) -> None:
    """Run the benchmark in the forked child with stderr on err_fd; never returns."""
    code = EXIT_FAILED
    current = ["starting"]
    try:
        os.dup2(err_fd, 2)
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before the death signal was set
            os._exit(EXIT_FAILED)

        def phase(name: str) -> None:
            current[0] = name
            os.write(status_fd, name.encode() + b"\n")

        code = benchmark_and_report(flags, phase)
    except RunnerFailure as exc:
        sys.stderr.write(f"lite_runner: {exc.message}\n")
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - the child must always exit with a code
        in_paddle = current[0] in _PADDLE_PHASES
        where = f" while {current[0]} {flags.optimized_model_file}" if in_paddle else ""
        text = f"{'paddlelite raised' if in_paddle else 'failed:'} {type(exc).__name__}{where}: {exc}"
        sys.stderr.write("lite_runner: " + " ".join(text.split()) + "\n")
        code = EXIT_MODEL if in_paddle else EXIT_FAILED
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _die_with_parent() -> None:
    """Have the kernel kill this child when the parent dies (a timeout's SIGKILL hits the parent)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the parent's SIGTERM handler still stops the child


def _fatal_line(stderr_text: str) -> str:
    """Give the most telling line of paddlelite's stderr (its fatal `[F ...]` check), shortened."""
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("[F ") or "Check failed" in line:
            line = re.sub(r"^\[F [^\]]*\]\s*", "", line)
            return line[:240]
    return lines[-1][:240] if lines else "no message"


def supervise(flags: Flags) -> int:
    """Give the exit code of the benchmark run in a forked child; a crash becomes EXIT_MODEL."""
    sys.stdout.flush()
    sys.stderr.flush()
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        os.close(status_r)
        _child(flags, parent, err_w, status_w)
    os.close(err_w)
    os.close(status_w)

    def stop_child(signum: int, _frame: Any) -> None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop_child)
    signal.signal(signal.SIGHUP, stop_child)
    chunks: list[bytes] = []
    try:
        while True:
            chunk = os.read(err_r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(err_r)
    phases = _read_all(status_r).decode(errors="replace").splitlines()
    os.close(status_r)
    stderr_text = b"".join(chunks).decode("utf-8", errors="replace")
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            signame = signal.Signals(signum).name
        except ValueError:
            signame = f"signal {signum}"
        where = phases[-1] if phases else "starting"
        raise RunnerFailure(f"paddlelite crashed ({signame}) while {where} {flags.optimized_model_file}: "
                            f"{_fatal_line(stderr_text)}", EXIT_MODEL)
    code = os.WEXITSTATUS(status)
    if code == EXIT_OK:
        sys.stderr.write(stderr_text)
        return EXIT_OK
    ours = [line for line in stderr_text.splitlines() if line.startswith("lite_runner: ")]
    sys.stderr.write((ours[-1] if ours else f"lite_runner: failed: {_fatal_line(stderr_text)}") + "\n")
    return code


def _read_all(fd: int) -> bytes:
    """Give everything left in a pipe up to its end."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


WALL_PREFIX = "lite_runner: process wall(ms): "


def process_wall_ms() -> float | None:
    """Give this process's wall time since it was forked, in ms, never more than it was (see
    `start_estimate`), or None where /proc cannot tell."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
        start_tick_s = int(fields[19]) * tick_s  # field 22: starttime, whole ticks since boot
        start_s = start_estimate(start_tick_s, tick_s, *_FIRST_CLOCKS)
        return (time.clock_gettime(time.CLOCK_BOOTTIME) - start_s) * 1000.0
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def start_estimate(start_tick_s: float, tick_s: float, first_boot_s: float, first_cpu_s: float) -> float:
    """Give the latest boot-clock time the process can have started at.

    The kernel gives the start rounded down to a whole clock tick (10 ms), so the tick alone makes a
    wall up to 10 ms (5 ms on average) too long, per case. A process that had used `first_cpu_s` of
    CPU (one thread, counted from the fork) by `first_boot_s` started no later than their difference;
    on a quiet CPU that is within a fraction of a millisecond of the start. The start lies in the
    tick, so the result is clipped to it: a wall from it is never longer than the real one."""
    return max(start_tick_s, min(start_tick_s + tick_s, first_boot_s - first_cpu_s))


def _report_process_wall() -> None:
    """Print the process's own wall time as one extra stderr line (parsers ignore it), so that a
    benchmark of the orchestrator can subtract the runner's time from its wall."""
    wall = process_wall_ms()
    if wall is not None:
        sys.stderr.write(f"{WALL_PREFIX}{wall:.1f}\n")
        sys.stderr.flush()


USAGE = """usage: lite_runner --optimized_model_file=M.nb --input_shape=1,3,128,96 --backend=x86 [flags]
benchmark_bin's flags: --threads --power_mode --warmup --repeats --run_delay --result_path
  --cpu_precision --enable_memory_profile --input_data_path --memory_check_interval_ms
Exit codes: 0 done, 1 environment, 2 bad flags, 3 model cannot run here (missing, corrupt, not x86)."""


def _run(args: list[str]) -> int:
    """Give the exit code of checking the flags and the .nb, then benchmarking."""
    flags = parse_flags(args)
    inspect_nb(flags.optimized_model_file)
    code = supervise(flags) if hasattr(os, "fork") else benchmark_and_report(flags)
    if code == EXIT_OK:
        _report_process_wall()
    return code


def main(argv: list[str] | None = None) -> int:
    """Give the process exit code for a benchmark_bin-style command line."""
    return run_main(argv, "lite_runner", f"{RUNNER_NAME} {RUNNER_VERSION}", USAGE, _run)


if __name__ == "__main__":
    exit_now(main())
