"""Parsers for runner logs: Paddle Lite's benchmark_bin (current and legacy), benchmark.sh, and
PaddleDetection's det + keypoint Lite demo. Pure functions: text in, RunRecords out.

The formats, as their sources print them:

- ``benchmark_bin``: ``lite/api/tools/benchmark/benchmark.cc`` (v2.10+). One run is a sequence of
  ``======= X Info =======`` blocks (Opt, Device, Model, Runtime, Backend, [Accurancy], Perf);
  Perf Info's times are fixed with 3 decimals. A new run starts when a block comes that does not
  follow the previous one in that order. kpmobile's lite_runner prints the same blocks.
- ``benchmark_bin_legacy``: ``lite/api/benchmark.cc`` (v2.3-v2.9) appended to result.txt one line
  per run: name left-aligned in 30 columns, then ``min = ``, ``max = ``, ``average = `` fixed with
  5 decimals in 12 columns. The benchmark.sh of those releases wrote header lines
  (``threads=1 warmup=10 repeats=30 input_shape=... power_mode=3`` or ``Threads=1 Warmup=10
  Repeats=30``) that apply to the lines after them.
- ``benchmark_sh``: benchmark.sh with the v2.2 benchmark_bin: ``PaddleLite Benchmark``, then
  ``Threads=N Warmup=N Repeats=N`` and ``-- <model, 18 columns>    avg = X ms`` lines.
- ``det_keypoint_demo``: PaddleDetection ``deploy/lite/src/main.cc``: ``---- Perf info ----``
  sections (``preproce_time(ms): ..``) and, with a keypoint model, ``---- Time info ----``
  (``Total Pipeline time(ms) [per image]: X``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kpmobile.errors import ParseError
from kpmobile.lazyre import LazyPattern
from kpmobile.records import LogDevice, OutputStat, RunRecord
from kpmobile.textfile import decode_text, read_text

FORMAT_BENCHMARK_BIN = "benchmark_bin"
FORMAT_LEGACY = "benchmark_bin_legacy"
FORMAT_BENCHMARK_SH = "benchmark_sh"
FORMAT_DET_KEYPOINT = "det_keypoint_demo"
FORMATS = (FORMAT_BENCHMARK_BIN, FORMAT_LEGACY, FORMAT_BENCHMARK_SH, FORMAT_DET_KEYPOINT)

_NO_RUN = "no complete run in log"
_HINT_CRASH = "read the raw log: the runner probably crashed or was cut off before it printed its timings"

# A number as C++ streams print it by default (%g) or fixed; "-nan" comes from glibc.
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"


class _Incomplete(Exception):
    """A run that started but holds no timing: `reason` says what is missing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Outcome:
    """What one format's parser found: complete runs, warnings, and why the others failed."""

    records: list[RunRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def parse_log(text: str) -> list[RunRecord]:
    """Give one RunRecord per complete run in a runner log; raise ParseError when there is none."""
    records, _warnings = parse_log_report(text)
    return records


def parse_file(path: Path) -> list[RunRecord]:
    """Give the complete runs of a log file (UTF-8 or UTF-16, any line ends); the error names the file
    when it holds none, is binary, empty or a folder."""
    text = read_text(Path(path), f"log file {path}")
    try:
        return parse_log(text)
    except ParseError as exc:
        raise ParseError(f"{path}: {exc.message}", exc.hint) from None


def parse_input(name: str) -> list[RunRecord]:
    """Give the complete runs of the log file `name`, or of standard input when it is '-'."""
    if name != "-":
        return parse_file(Path(name))
    text = decode_text(sys.stdin.buffer.read(), "standard input")
    try:
        return parse_log(text)
    except ParseError as exc:
        raise ParseError(f"standard input: {exc.message}", exc.hint) from None


def parse_log_report(text: str) -> tuple[list[RunRecord], list[str]]:
    """Give the complete runs and warnings (partial runs ignored, odd lines); ParseError if no run."""
    lines = _pasted_lines(text)
    if not any(line.strip() for line in lines):
        raise ParseError(f"{_NO_RUN}: the log is empty", _HINT_CRASH)
    fmt = _detect_lines(lines)
    if fmt is None:
        evidence = _crash_line(lines)
        raise ParseError(
            f"{_NO_RUN}: no benchmark_bin 'Info' block, result.txt line, benchmark.sh line or "
            f"det/keypoint demo timing found in {len(lines)} lines",
            f"the log shows: {evidence}" if evidence else
            "check that the log comes from benchmark_bin, kpmobile's lite_runner or the det/keypoint demo",
        )
    parser: Callable[[list[str]], _Outcome] = _PARSERS[fmt]
    outcome = parser(lines)
    if not outcome.records:
        reason = outcome.failures[-1] if outcome.failures else "no run found"
        evidence = _crash_line(lines)
        raise ParseError(f"{_NO_RUN}: {reason}", f"the log shows: {evidence}" if evidence else _HINT_CRASH)
    return outcome.records, outcome.warnings


_CRASH = LazyPattern(r"^\[F |Check failed|Segmentation fault|Aborted|terminate called|CANNOT LINK EXECUTABLE"
                    r"|not executable|[Ss]ignal \d+|Fatal signal")


def _crash_line(lines: Sequence[str]) -> str | None:
    """Give the first line that looks like a crash report (paddle's fatal check, a signal), if any."""
    for line in lines:
        if _CRASH.search(line):
            return line.strip()[:200]
    return None


_QUOTE = LazyPattern(r"^\s*(?:>\s?)+")


def _pasted_lines(text: str) -> list[str]:
    """Give the lines of a log as the runner wrote them: CR line ends, a BOM, Markdown indentation
    (code blocks, list items) and '>' quote markers of a pasted log taken off."""
    lines = text.lstrip("\ufeff").splitlines()
    return [_QUOTE.sub("", line).strip() for line in lines]


def detect_format(text: str) -> str | None:
    """Give the RunRecord.format the log is written in, or None when it is none of them."""
    return _detect_lines(_pasted_lines(text))


def _detect_lines(lines: Sequence[str]) -> str | None:
    """Give the format of normalised log lines, or None."""
    if any(_bin_header(line) is not None for line in lines):
        return FORMAT_BENCHMARK_BIN
    if any(_DET_MARKER.search(line) or _DET_USAGE.match(line) for line in lines):
        return FORMAT_DET_KEYPOINT
    for line in lines:  # benchmark.sh of v2.3-v2.9 wrote legacy result lines under its headers
        if _SH_RUN.match(line):
            return FORMAT_BENCHMARK_SH
        if _LEGACY_RUN.match(line):
            return FORMAT_LEGACY
    if any(_SH_TITLE.match(line) or _settings_line(line) is not None for line in lines):
        return FORMAT_BENCHMARK_SH
    return None


def _num(text: str) -> float:
    """Give the float of a number as C++ printed it ("-nan" included)."""
    return float(text)


# ---------------------------------------------------------------------------------------------
# benchmark_bin (lite/api/tools/benchmark) and kpmobile's lite_runner

_BLOCK_ORDER = {"Opt": 0, "Device": 1, "Model": 2, "Runtime": 3, "Backend": 4, "Accurancy": 5, "Perf": 6}
_HEADER = LazyPattern(r"^======= (?P<name>\w+) Info =======\s*$")
_KEY_VALUE = LazyPattern(r"^(?P<key>[^:]+):(?: (?P<value>.*))?$")
_FIXED3 = LazyPattern(r"^(?P<key>init|first|min|max|avg|peak)\s*= (?P<value>-?\d+\.\d{3})\s*$")
_PERF_KEY = LazyPattern(r"^(?P<key>init|first|min|max|avg|peak)\s*= ?(?P<value>.*)$")
_TENSOR_HEAD = LazyPattern(r"^--- output tensor (?P<index>\d+) ---$")
_TENSOR_FIELD = LazyPattern(
    r"^output tensor (?P<index>\d+) (?P<key>elem num|mean value|standard deviation): (?P<value>\S+)\s*$"
)
_RUNTIME_KEYS = {"benchmark_bin version", "threads", "power_mode", "warmup", "repeats", "run_delay(sec)",
                 "result_path"}
_ACCURACY = LazyPattern(r"^Top-\d+ Accurancy: " + _NUM + r"\s*$")
# kpmobile's runners add this line to their result file: every timed iteration, in ms
_SAMPLES = LazyPattern(r"^per-iteration\(ms\):(?P<values>(?: " + _NUM + r")*)\s*$")


def _samples(lines: Sequence[str]) -> tuple[float, ...]:
    """Give the per-iteration times of the last `per-iteration(ms):` line among lines, () if none."""
    for line in reversed(lines):
        match = _SAMPLES.match(line.rstrip("\n"))
        if match:
            return tuple(float(v) for v in match.group("values").split())
    return ()


def _bin_header(line: str) -> str | None:
    """Give the block name of a benchmark_bin `======= X Info =======` line, else None."""
    match = _HEADER.match(line)
    if match and match.group("name") in _BLOCK_ORDER:
        return match.group("name")
    return None


@dataclass
class _Block:
    """One `======= X Info =======` block and the lines under it."""

    name: str
    line_no: int  # 1-based line of the header
    lines: list[str] = field(default_factory=list)


def _split_bin_runs(lines: Sequence[str]) -> list[list[_Block]]:
    """Give the runs of a benchmark_bin log as lists of blocks; lines before any block are dropped."""
    runs: list[list[_Block]] = []
    current: list[_Block] = []
    for number, line in enumerate(lines, start=1):
        name = _bin_header(line)
        if name is not None:
            if current and _BLOCK_ORDER[name] <= _BLOCK_ORDER[current[-1].name]:
                runs.append(current)
                current = []
            current.append(_Block(name, number))
        elif current:
            current[-1].lines.append(line)
    if current:
        runs.append(current)
    return runs


def _parse_bin_runs(lines: list[str]) -> _Outcome:
    """Give the runs of a benchmark_bin / lite_runner log (stdout or result file)."""
    outcome = _Outcome()
    runs = _split_bin_runs(lines)
    commands = _command_models(lines)
    abis = _command_abis(lines)
    for index, blocks in enumerate(runs):
        named = [name for line_no, name in commands if line_no < blocks[0].line_no]
        abi = [value for line_no, value in abis if line_no < blocks[0].line_no]
        try:
            record, warnings = _bin_record(blocks, named[-1] if named else None, abi[-1] if abi else None)
        except _Incomplete as exc:
            outcome.failures.append(exc.reason)
            where = "trailing" if index == len(runs) - 1 else "incomplete"
            outcome.warnings.append(f"line {blocks[0].line_no}: {where} run ignored: {exc.reason}")
            continue
        outcome.records.append(record)
        outcome.warnings.extend(f"line {blocks[0].line_no}: {w}" for w in warnings)
    return outcome


def _key_values(block: _Block) -> list[tuple[str, str]]:
    """Give the `key: value` lines of a block (value "" when empty), other lines dropped."""
    pairs = []
    for line in block.lines:
        match = _KEY_VALUE.match(line.rstrip("\n"))
        if match:
            pairs.append((match.group("key").strip(), (match.group("value") or "").strip()))
    return pairs


def _int_or_none(value: str | None) -> int | None:
    """Give int(value), or None when it is absent or not an integer."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _model_input_shape(block: _Block | None) -> str | None:
    """Give Model Info's `input_shape` value, or None."""
    pairs = dict(_key_values(block)) if block is not None else {}
    return pairs.get("input_shape") or None


def _bin_record(blocks: list[_Block], command_model: str | None = None,
                command_abi: str | None = None) -> tuple[RunRecord, list[str]]:
    """Give the record of one benchmark_bin run and its warnings; raise _Incomplete without timings."""
    by_name = {block.name: block for block in blocks}
    perf = by_name.get("Perf")
    if perf is None:
        raise _Incomplete(f"'Perf Info' block missing after '{blocks[-1].name} Info'")
    times, memory, perf_notes = _perf_values(perf)
    if "avg" not in times:
        broken = [line.strip() for line in perf.lines if _PERF_KEY.match(line) and not _FIXED3.match(line)]
        if broken:
            raise _Incomplete(f"'Perf Info' cut short at {broken[-1]!r}, before 'avg'")
        raise _Incomplete("'avg' line missing in 'Perf Info'")

    warnings: list[str] = []
    notes: list[str] = []
    model_file: str | None = None
    outputs: tuple[OutputStat, ...] = ()
    model_block = by_name.get("Model")
    if model_block is not None:
        model_file, outputs, model_notes, model_warnings = _model_info(model_block)
        notes.extend(model_notes)
        warnings.extend(model_warnings)

    runtime_pairs = _key_values(by_name["Runtime"]) if "Runtime" in by_name else []
    runtime = dict(runtime_pairs)
    if runtime.get("benchmark_bin version"):
        notes.insert(0, f"benchmark_bin version: {runtime['benchmark_bin version']}")
    # anything else, e.g. lite_runner's "threads applied: no (x86 MobileConfig has no set_threads)"
    notes.extend(f"{k}: {v}" for k, v in runtime_pairs if k not in _RUNTIME_KEYS)

    backend_pairs = _key_values(by_name["Backend"]) if "Backend" in by_name else []
    backend = dict(backend_pairs)
    notes.extend(f"{k}: {v}" for k, v in backend_pairs if k not in ("backend", "cpu precision"))
    if "Accurancy" in by_name:
        notes.extend(line.strip() for line in by_name["Accurancy"].lines if _ACCURACY.match(line))
    notes.extend(perf_notes)

    run_delay = runtime.get("run_delay(sec)")
    record = RunRecord(
        format=FORMAT_BENCHMARK_BIN,
        model=_bin_model_name(model_file, by_name.get("Opt")) or command_model,
        abi=command_abi,
        runner_version=runtime.get("benchmark_bin version") or None,
        input_shape=_model_input_shape(model_block),
        avg_ms=times.get("avg"),
        min_ms=times.get("min"),
        max_ms=times.get("max"),
        first_ms=times.get("first"),
        init_ms=times.get("init"),
        threads=_int_or_none(runtime.get("threads")),
        power_mode=_int_or_none(runtime.get("power_mode")),
        warmup=_int_or_none(runtime.get("warmup")),
        repeats=_int_or_none(runtime.get("repeats")),
        backend=backend.get("backend") or None,
        cpu_precision=backend.get("cpu precision") or None,
        run_delay=_num(run_delay) if run_delay else None,
        init_mb=memory.get("init"),
        peak_mb=memory.get("peak"),
        device=_log_device(by_name["Device"]) if "Device" in by_name else None,
        outputs=outputs,
        threads_applied=_applied(runtime.get("threads applied")),
        notes=tuple(notes),
        samples_ms=_samples(perf.lines),
    )
    if memory and ("init" not in memory or "peak" not in memory):
        warnings.append("'Memory Usage' lines incomplete")
    return record, warnings


def _applied(value: str | None) -> bool | None:
    """Give whether a runtime line such as "threads applied: no (...)" says the setting took effect."""
    if not value:
        return None
    word = value.split()[0].lower()
    return True if word == "yes" else False if word == "no" else None


def _perf_values(block: _Block) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Give Perf Info's times (ms), memory (MB) and notes; a value not fixed-3 is left out."""
    times: dict[str, float] = {}
    memory: dict[str, float] = {}
    notes: list[str] = []
    section = times
    for raw in block.lines:
        line = raw.rstrip("\n")
        if line.startswith("Time(unit: ms)"):
            section = times
        elif line.startswith("Memory Usage(unit: MB)"):
            section = memory
        elif line.startswith("Memory Usage("):
            # v2.10/v2.11 printed "Memory Usage(unit: kB):" and "Not supported yet"
            section = {}
            notes.append(f"memory usage not measured: benchmark_bin printed {line.strip()!r} "
                         "with 'Not supported yet'")
        else:
            match = _FIXED3.match(line)
            if match and match.group("key") not in section:
                section[match.group("key")] = float(match.group("value"))
    return times, memory, notes


def _model_info(block: _Block) -> tuple[str | None, tuple[OutputStat, ...], list[str], list[str]]:
    """Give Model Info's model file, output stats, notes and warnings."""
    model_file: str | None = None
    notes: list[str] = []
    warnings: list[str] = []
    declared: int | None = None
    shapes: dict[int, tuple[int, ...]] = {}
    fields: dict[int, dict[str, str]] = {}
    current: int | None = None
    for raw in block.lines:
        line = raw.rstrip("\n")
        head = _TENSOR_HEAD.match(line)
        if head:
            current = int(head.group("index"))
            continue
        tensor = _TENSOR_FIELD.match(line)
        if tensor:
            fields.setdefault(int(tensor.group("index")), {})[tensor.group("key")] = tensor.group("value")
            continue
        if line.startswith("output shape(NCHW):") and current is not None:
            shapes[current] = tuple(int(d) for d in line.split(":", 1)[1].split())
            continue
        match = _KEY_VALUE.match(line)
        if not match:
            continue
        key, value = match.group("key").strip(), (match.group("value") or "").strip()
        if key == "optimized_model_file":
            model_file = value
        elif key == "input_shape":
            notes.append(f"input_shape: {value}")
        elif key == "input_data_path" and value not in ("", "All 1.f"):
            notes.append(f"input_data_path: {value}")
        elif key == "output tensor num":
            declared = _int_or_none(value)
    outputs = _output_stats(shapes, fields, warnings)
    if declared is not None and declared != len(outputs):
        warnings.append(f"'output tensor num: {declared}' but {len(outputs)} tensors parsed")
    return model_file, outputs, notes, warnings


def _output_stats(shapes: dict[int, tuple[int, ...]], fields: dict[int, dict[str, str]],
                  warnings: list[str]) -> tuple[OutputStat, ...]:
    """Give the output tensors whose shape, mean and standard deviation were all printed (warnings for the rest)."""
    outputs = []
    for index in sorted(set(shapes) | set(fields)):
        values = fields.get(index, {})
        if index not in shapes or "mean value" not in values or "standard deviation" not in values:
            warnings.append(f"output tensor {index} is missing its shape, mean or standard deviation")
            continue
        shape = shapes[index]
        elems = _int_or_none(values.get("elem num"))
        product = 1
        for dim in shape:
            product *= dim
        if elems is not None and elems != product:
            warnings.append(f"output tensor {index}: elem num {elems} != product of shape {product}")
        outputs.append(OutputStat(shape=shape, mean=_num(values["mean value"]),
                                  std=_num(values["standard deviation"])))
    return tuple(outputs)


_OPT_LOAD = LazyPattern(r"^Load paddle model from (?P<path>.*?)(?: and (?P<params>\S+))?\s*$")
# File names that say nothing of the model: Paddle exports are all inference.pdmodel, opt saves opt.nb.
_GENERIC_STEMS = {"", "opt", "inference", "model", "__model__", "infer", "inference_model"}
_COMMAND_MODEL = LazyPattern(r"--(?:model_file|uncombined_model_dir|optimized_model_path|optimized_model_file)"
                            r"=[\"']?(?P<path>[^\s\"']+)")


def _model_from_path(path: str) -> str | None:
    """Give a model's name from its file or folder path: the file stem, else the folder holding it."""
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    while parts:
        stem = parts[-1]
        for suffix in (".nb", ".pdmodel", ".pdiparams", ".model", ".params"):
            stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
        if stem.lower() not in _GENERIC_STEMS:
            return stem
        parts.pop()
    return None


# The runner's build folder or file name says its ABI: build.lite.android.armv8.clang/,
# benchmark_bin_v7, build.lite.linux.x86.gcc/ (pasted commands above a run).
_BUILD_ABI = LazyPattern(r"(?:\bbuild\.lite\.(?:android|linux|armlinux)\.(?P<arm>armv[78](?:hf)?)\b"
                        r"|\bbenchmark_bin_v(?P<v>[78])\b|\bbuild\.lite\.(?:linux\.)?(?P<x86>x86)\b)")


def _command_abis(lines: Sequence[str]) -> list[tuple[int, str]]:
    """Give (line number, ABI) of each pasted command line that names the runner's build."""
    found = []
    for number, line in enumerate(lines, start=1):
        match = _BUILD_ABI.search(line)
        if match:
            found.append((number, match.group("arm") or (f"armv{match.group('v')}" if match.group("v") else "x86")))
    return found


def _command_models(lines: Sequence[str]) -> list[tuple[int, str]]:
    """Give (line number, model name) of each benchmark_bin command line pasted in the log."""
    found = []
    for number, line in enumerate(lines, start=1):
        match = _COMMAND_MODEL.search(line)
        name = _model_from_path(match.group("path")) if match else None
        if name:
            found.append((number, name))
    return found


def _bin_model_name(model_file: str | None, opt: _Block | None) -> str | None:
    """Give the model name: the .nb's stem, or the source model's folder when the file names say nothing."""
    name = _model_from_path(model_file) if model_file else None
    if name is not None or opt is None:
        return name
    # OutputOptModel saves to "<model dir>/opt.nb" (older releases: ".nb") by default
    for line in opt.lines:
        match = _OPT_LOAD.match(line.rstrip("\n"))
        if match:
            return _model_from_path(match.group("path"))
    return None


def _log_device(block: _Block) -> LogDevice:
    """Give the Device Info block as a LogDevice; empty getprop answers are None."""
    values = {key: value or None for key, value in _key_values(block)}
    return LogDevice(
        brand=values.get("Brand"),
        device=values.get("Device"),
        model=values.get("Model"),
        android_version=values.get("Android Version"),
        api_level=_int_or_none(values.get("Android API Level")),
    )


# ---------------------------------------------------------------------------------------------
# result.txt of the old benchmark_bin, and benchmark.sh result files

_SH_TITLE = LazyPattern(r"^PaddleLite Benchmark(?: \(in ms\))?(?:\\n)?\s*$")
_SH_RUN = LazyPattern(r"^-- (?P<name>.+?)\s+avg = (?P<avg>" + _NUM + r") ms\s*$")
_LEGACY_RUN = LazyPattern(
    r"^(?P<name>.*?)\s*min = (?P<min>-?\d+\.\d{5})\s*max = (?P<max>-?\d+\.\d{5})\s*"
    r"average = (?P<avg>-?\d+\.\d{5})\s*$"
)
_SETTING = LazyPattern(r"^(?P<key>[A-Za-z_]+)=(?P<value>\S*)$")
_SETTING_KEYS = {"threads", "warmup", "repeats", "input_shape", "power_mode"}


def _settings_line(line: str) -> dict[str, str] | None:
    """Give the settings of a benchmark.sh header line (`threads=1 warmup=10 ...`), else None."""
    tokens = line.split()
    if not tokens:
        return None
    found: dict[str, str] = {}
    for token in tokens:
        match = _SETTING.match(token)
        if not match or match.group("key").lower() not in _SETTING_KEYS:
            return None
        found[match.group("key").lower()] = match.group("value")
    return found if "threads" in found else None


_SH_ABI = LazyPattern(r"^run benchmark (?P<abi>\S+)\s*$")


@dataclass
class _LineState:
    """What applies to the result lines below: the header settings and the ABI section."""

    settings: dict[str, str] = field(default_factory=dict)
    abi: str | None = None

    def common(self) -> dict[str, object]:
        """Give the RunRecord fields the header and section give every line under them."""
        return {
            "threads": _int_or_none(self.settings.get("threads")),
            "warmup": _int_or_none(self.settings.get("warmup")),
            "repeats": _int_or_none(self.settings.get("repeats")),
            "power_mode": _int_or_none(self.settings.get("power_mode")),
            "input_shape": self.settings.get("input_shape") or None,
            "abi": self.abi,
        }


def _line_header(line: str, state: _LineState) -> bool:
    """Give True when `line` is a title, ABI section or settings header (and update `state`)."""
    abi = _SH_ABI.match(line)
    if abi:  # the one-click benchmark.sh runs armv7 and armv8 in one file
        state.abi, state.settings = abi.group("abi"), {}
        return True
    if _SH_TITLE.match(line):
        state.settings = {}
        return True
    header = _settings_line(line)
    if header is not None:
        state.settings = header
        return True
    return False


def _sh_record(match: re.Match[str], state: _LineState) -> RunRecord:
    return RunRecord(format=FORMAT_BENCHMARK_SH, model=match.group("name").strip() or None,
                     avg_ms=_num(match.group("avg")), **state.common())  # type: ignore[arg-type]


def _legacy_record(match: re.Match[str], state: _LineState) -> RunRecord:
    """Give a result.txt line's record (fixed 5 decimals: a line cut inside a number does not match)."""
    low, high = _num(match.group("min")), _num(match.group("max"))
    notes: tuple[str, ...] = ()
    if low > high:
        # v2.3-v2.8 sorted ascending, then wrote back() as min and front() as max
        low, high = high, low
        notes = ("min/max swapped back: benchmark_bin v2.3-v2.8 wrote them the wrong way round",)
    return RunRecord(format=FORMAT_LEGACY, model=match.group("name").strip() or None,
                     avg_ms=_num(match.group("avg")), min_ms=low, max_ms=high, notes=notes,
                     **state.common())  # type: ignore[arg-type]


def _parse_line_runs(lines: list[str]) -> _Outcome:
    """Give the runs of a result.txt / benchmark.sh file: one per model line."""
    outcome = _Outcome()
    state = _LineState()
    last = len(lines)
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        if not line.strip() or _line_header(line, state):
            continue
        sh = _SH_RUN.match(line)
        legacy = _LEGACY_RUN.match(line)
        if sh:
            outcome.records.append(_sh_record(sh, state))
        elif legacy:
            outcome.records.append(_legacy_record(legacy, state))
        elif line.startswith("-- ") or "min = " in line or "average = " in line:
            where = "trailing" if number == last else "incomplete"
            reason = f"result line cut short: {line.strip()!r}"
            outcome.failures.append(reason)
            outcome.warnings.append(f"line {number}: {where} run ignored: {reason}")
    if not outcome.records and not outcome.failures:
        outcome.failures.append("benchmark.sh header found but no model result line")
    return outcome


# ---------------------------------------------------------------------------------------------
# PaddleDetection deploy/lite det + keypoint demo

_DET_SECTION = LazyPattern(r"^-+ (?P<name>Config|Data|Model|Perf|Time) info -+\s*$")
_DET_MARKER = LazyPattern(
    r"^-+ (?:Config|Perf|Time) info -+\s*$|preproce_time\(ms\): |Total Pipeline time\(ms\)"
    r"|batchsize of detection forced to be 1|The number of detected box: "
)
_DET_USAGE = LazyPattern(r"^Usage: \S+ \[config_path\]")
_DET_FORCED = LazyPattern(r"batchsize of detection forced to be 1 while keypoint model is not empty\(\)")
_DET_THREADS = LazyPattern(r"^num_threads: (?P<value>-?\d+)\s*$")
_DET_MODEL = LazyPattern(r"^(?P<kind>detection|keypoint) model_name: ?(?P<value>.*)$")
_DET_COUNT = LazyPattern(
    r"^Total number of predicted data: (?P<count>\d+) and total time spent\(ms\): (?P<total>" + _NUM + ")"
)
_DET_STAGES = LazyPattern(
    r"^preproce_time\(ms\): (?P<pre>" + _NUM + r"), inference_time\(ms\): (?P<inf>" + _NUM
    + r"), postprocess_time\(ms\): (?P<post>" + _NUM + r")\s*$"
)
_DET_TOTAL = LazyPattern(r"^Total Pipeline time\(ms\)(?: per image)?: (?P<value>" + _NUM + r")\s*$")
_DET_SPLIT = LazyPattern(
    r"^[Aa]verage det time\(ms\)(?: per image)?: (?P<det>" + _NUM + r"), average keypoint time\(ms\)"
    r"(?: per image)?: (?P<kpt>" + _NUM + r"), average crop time\(ms\)(?: per image)?: (?P<crop>"
    + _NUM + r")\s*$"
)


@dataclass
class _DetRun:
    """What one invocation of the det(+keypoint) demo printed so far."""

    line_no: int
    threads: int | None = None
    det_model: str | None = None
    keypoint_model: str | None = None
    keypoint: bool = False  # a keypoint model was loaded: the run ends with 'Time info'
    counts: list[int] = field(default_factory=list)
    stages: list[tuple[float, float, float]] = field(default_factory=list)
    total: float | None = None
    split: tuple[float, float, float] | None = None
    content: bool = False
    samples: tuple[float, ...] = ()
    totals: list[tuple[int, float]] = field(default_factory=list)  # (images, total ms) per Perf info

    def complete(self) -> bool:
        """Give whether the run printed its last timing line."""
        if self.keypoint:
            return self.total is not None and self.split is not None
        return bool(self.stages) or any(count > 0 for count, _ in self.totals)

    def absorb(self, line: str) -> None:
        """Give nothing: take what one line of the run (not a section header) says."""
        if _DET_FORCED.search(line):
            self.keypoint = self.content = True
        if line.startswith("batch_size_keypoint:") or line.startswith("Average time cost per person"):
            self.keypoint = self.content = True
        match = _DET_THREADS.match(line)
        if match:
            self.threads = int(match.group("value"))
        match = _DET_MODEL.match(line)
        if match:
            name = _model_from_path(match.group("value").strip())
            if match.group("kind") == "detection":
                self.det_model = name
            else:
                self.keypoint_model = name
                self.keypoint = True
        match = _DET_COUNT.match(line)
        if match:
            self.counts.append(int(match.group("count")))
            self.totals.append((int(match.group("count")), _num(match.group("total"))))
        self._absorb_times(line)
        if any(r.match(line) for r in (_DET_THREADS, _DET_MODEL, _DET_COUNT, _DET_STAGES)):
            self.content = True

    def _absorb_times(self, line: str) -> None:
        """Give nothing: take a stage-times, pipeline-total or det/keypoint/crop split line."""
        match = _DET_STAGES.match(line)
        if match:
            self.stages.append((_num(match.group("pre")), _num(match.group("inf")), _num(match.group("post"))))
        match = _DET_TOTAL.match(line)
        if match:
            self.total = _num(match.group("value"))
            self.keypoint = True
        match = _DET_SPLIT.match(line)
        if match:
            self.split = (_num(match.group("det")), _num(match.group("kpt")), _num(match.group("crop")))
            self.keypoint = True

    def reason(self) -> str:
        """Give what an incomplete run is missing."""
        if not self.stages:
            return "'Perf info' section missing (the demo stopped before printing its timings)"
        if self.total is None:
            return "'Time info' section missing after 'Perf info'"
        return "'average det time' line missing in 'Time info'"


def _det_runs(lines: list[str]) -> list[_DetRun]:
    """Give the demo invocations of a log, in order; a usage line or a new Config info starts one."""
    runs: list[_DetRun] = []
    run = _DetRun(line_no=1)
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        section = _DET_SECTION.match(line)
        starts = bool(_DET_USAGE.match(line)) or (
            section is not None and section.group("name") == "Config" and run.complete()
        )
        if starts and (run.content or run.complete()):
            runs.append(run)
            run = _DetRun(line_no=number)
        if section is not None or starts:
            run.content = True
            continue
        run.absorb(line)
    if run.content or run.complete():
        runs.append(run)
    _attach_det_samples(runs, lines)
    return runs


def _parse_det_runs(lines: list[str]) -> _Outcome:
    """Give the runs of a det(+keypoint) demo log: one per demo invocation."""
    outcome = _Outcome()
    runs = _det_runs(lines)
    for index, item in enumerate(runs):
        if item.complete():
            outcome.records.append(_det_record(item))
        else:
            reason = item.reason()
            outcome.failures.append(reason)
            where = "trailing" if index == len(runs) - 1 else "incomplete"
            outcome.warnings.append(f"line {item.line_no}: {where} run ignored: {reason}")
    return outcome


def _attach_det_samples(runs: list[_DetRun], lines: list[str]) -> None:
    """Give each run the per-iteration line that kpmobile's pipeline runner wrote within its lines."""
    ends = [r.line_no for r in runs[1:]] + [len(lines) + 1]
    for run, end in zip(runs, ends):
        run.samples = _samples(lines[run.line_no - 1:end - 1])


def _det_record(run: _DetRun) -> RunRecord:
    """Give the record of one complete det(+keypoint) demo run."""
    stages: dict[str, float] = {}
    notes: list[str] = []
    if run.stages:
        stages.update(zip(("preprocess", "inference", "postprocess"), run.stages[0], strict=True))
    if len(run.stages) > 1:
        keys = ("keypoint_preprocess", "keypoint_inference", "keypoint_postprocess")
        stages.update(zip(keys, run.stages[1], strict=True))
    if run.keypoint and run.total is not None and run.split is not None:
        stages["total"] = run.total
        stages.update(zip(("det", "keypoint", "crop"), run.split, strict=True))
        avg = run.total
    elif run.stages:
        avg = sum(run.stages[0])
        notes.append("no keypoint model: avg_ms is preprocess + inference + postprocess")
    else:
        count, spent = run.totals[0]
        avg = spent / count
        stages["total_spent"] = spent
        notes.append("no keypoint model and no stage line: avg_ms is total time spent / predicted images")
    if run.keypoint_model:
        notes.append(f"keypoint model_name: {run.keypoint_model}")
    if run.counts:
        notes.append(f"images: {run.counts[0]}")
    if len(run.counts) > 1:
        notes.append(f"persons: {run.counts[1]}")
    return RunRecord(
        format=FORMAT_DET_KEYPOINT,
        model=run.det_model,
        avg_ms=avg,
        threads=run.threads,
        stages=stages,
        persons_found=run.counts[1] if len(run.counts) > 1 else None,
        notes=tuple(notes),
        samples_ms=run.samples,
    )


_PARSERS: dict[str, Callable[[list[str]], _Outcome]] = {
    FORMAT_BENCHMARK_BIN: _parse_bin_runs,
    FORMAT_LEGACY: _parse_line_runs,
    FORMAT_BENCHMARK_SH: _parse_line_runs,
    FORMAT_DET_KEYPOINT: _parse_det_runs,
}
