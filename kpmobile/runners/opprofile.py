"""Paddle Lite's profiler summary (the tables a LITE_WITH_PROFILE `benchmark_bin` logs on stderr) -> rows.

A profiling build logs three tables when the predictor is destroyed (`lite/core/program.h`,
`lite/core/profile/profiler.cc`), each a glog `LOG(INFO)` message whose text starts on the line
after the `[I ... program.h:NNN ~RuntimeProgram]` header:

1. `===== Detailed Dispatch Profiler Summary: NAME, Exclude 1 first-epoch =====`: one row per op in
   execution order, 14 columns (`OperatorType KerneAttr(Place) KernelFuncName Remark InDim FilterDim
   OutDim Avg(ms) Min(ms) Max(ms) Cur(ms) Per(%) MFLOPs GOPS`).
2. `Timing cycle = N` then `===== Concise Create Profiler Summary: NAME, Exclude W warm-ups =====`.
3. The same for Dispatch: 9 columns (`OperatorType KerneAttr(Place) KernelFuncName Avg(ms) Min(ms)
   Max(ms) Per(%) MFLOPs CalledTimes`), one row per kernel, Avg/Min/Max summed over its ops.

Columns are padded with `setw`, so long values push later ones out of line and empty strings
vanish: rows are split on whitespace and read from both ends (names first, numbers last). The
concise tables drop the first W (10) runs, so with warmup + repeats <= W they are all zero; the
detailed one drops only the first run. `per_kernel` therefore aggregates the detailed table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kpmobile.errors import ParseError
from kpmobile.records import KernelTime

_TITLE = re.compile(
    r"^===== (Detailed|Concise) (\w+) Profiler Summary: (.*), Exclude (\d+) (first-epoch|warm-ups) =====\s*$")
_CYCLE = re.compile(r"^Timing cycle = (\d+)\s*$")
_GLOG = re.compile(r"^\[[IWEF] [^\]]*\]")
_DETAILED_NUMBERS = 7  # Avg Min Max Cur Per MFLOPs GOPS
_CONCISE_NUMBERS = 6  # Avg Min Max Per MFLOPs CalledTimes


@dataclass(frozen=True)
class OpTime:
    """One row of a profiler table: an op (detailed) or a kernel group (concise)."""

    op_type: str
    kernel: str  # KerneAttr(Place), e.g. arm/float/NCHW
    func: str  # KernelFuncName (NotImpl when the kernel does not name it)
    avg_ms: float
    min_ms: float
    max_ms: float
    share: float  # Per(%) as printed (2 decimals)
    calls: int = 1  # ops in the group (concise CalledTimes); 1 for a detailed row
    remark: str = ""
    in_dim: str = ""
    filter_dim: str = ""

    def to_json(self) -> dict[str, Any]:
        """Give the row as JSON."""
        return asdict(self)


@dataclass(frozen=True)
class ProfileTable:
    """One of the three tables."""

    kind: str  # "detailed" or "concise"
    timer: str  # "Dispatch" or "Create"
    name: str
    excluded: int  # runs left out of the statistics (1 first-epoch, or W warm-ups)
    cycles: int | None  # `Timing cycle = N` (concise only): runs the profiler timed
    rows: tuple[OpTime, ...]

    def to_json(self) -> dict[str, Any]:
        """Give the table as JSON."""
        return {"kind": self.kind, "timer": self.timer, "name": self.name, "excluded": self.excluded,
                "cycles": self.cycles, "rows": [r.to_json() for r in self.rows]}


@dataclass(frozen=True)
class OpProfile:
    """The profiler's tables from one runner invocation."""

    tables: tuple[ProfileTable, ...]

    def table(self, kind: str, timer: str = "Dispatch") -> ProfileTable | None:
        """Give the table of that kind and timer, when it was printed."""
        return next((t for t in self.tables if t.kind == kind and t.timer == timer), None)

    def to_json(self) -> dict[str, Any]:
        """Give the profile as JSON."""
        return {"tables": [t.to_json() for t in self.tables]}


def has_profile(text: str) -> bool:
    """Tell whether `text` holds a profiler summary."""
    return any(_TITLE.match(line) for line in text.splitlines())


def parse_profile(text: str) -> OpProfile:
    """Give the profiler tables found in a runner's stderr (or a whole log); ParseError when there is none."""
    lines = text.splitlines()
    tables: list[ProfileTable] = []
    for i, line in enumerate(lines):
        m = _TITLE.match(line)
        if m:
            cycle = _CYCLE.match(lines[i - 1]) if i else None
            tables.append(_table(m, int(cycle.group(1)) if cycle else None, lines, i + 1))
    if not tables:
        raise ParseError("no Paddle Lite profiler summary in the text",
                         "give the stderr of a LITE_WITH_PROFILE build of benchmark_bin")
    return OpProfile(tuple(tables))


def _table(title: re.Match[str], cycles: int | None, lines: Sequence[str], start: int) -> ProfileTable:
    kind = title.group(1).lower()
    rows: list[OpTime] = []
    for lineno in range(start + 1, len(lines)):  # lines[start] is the header
        line = lines[lineno]
        if not line.strip() or _GLOG.match(line) or _TITLE.match(line) or _CYCLE.match(line):
            break
        rows.append(_row(line, kind, lineno + 1))
    return ProfileTable(kind, title.group(2), title.group(3), int(title.group(4)), cycles, tuple(rows))


def _row(line: str, kind: str, lineno: int) -> OpTime:
    tokens = line.split()
    numbers = _DETAILED_NUMBERS if kind == "detailed" else _CONCISE_NUMBERS
    if len(tokens) < 2 + numbers:
        raise ParseError(f"profiler row at line {lineno} has {len(tokens)} fields: {line.strip()[:80]!r}",
                         "give the unmodified stderr of the profiling benchmark_bin")
    names, values = tokens[:-numbers], tokens[-numbers:]
    try:
        avg, low, high = (_ms(v) for v in values[:3])
        share = _ms(values[4 if kind == "detailed" else 3].rstrip("%"))
        calls = 1 if kind == "detailed" else int(values[5])
    except ValueError as exc:
        raise ParseError(f"profiler row at line {lineno} has a bad number ({exc})",
                         "give the unmodified stderr of the profiling benchmark_bin") from exc
    func = names[2] if len(names) > 2 else ""
    extra = names[3:] if kind == "detailed" else []
    remark, in_dim, filter_dim = (extra + ["", "", ""])[:3] if len(extra) >= 4 else ("", "", "")
    return OpTime(names[0], names[1], func, avg, low, high, share, calls, remark, in_dim, filter_dim)


def _ms(text: str) -> float:
    value = float(text)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def per_kernel(profile: OpProfile) -> tuple[str, list[KernelTime]]:
    """Give the source table's description and one row per kernel, slowest first, shares summing to 100.

    The detailed dispatch table is used (it excludes only the first run, so it has numbers even for
    short runs); its per-op rows are summed per (op type, kernel, function) like the concise table.
    """
    table = profile.table("detailed") or profile.table("concise")
    if table is None:
        raise ParseError("the profiler summary has no Dispatch table", "give the whole stderr of the runner")
    groups: dict[tuple[str, str, str], list[OpTime]] = {}
    for row in table.rows:
        groups.setdefault((row.op_type, row.kernel, row.func), []).append(row)
    total = sum(r.avg_ms for r in table.rows)
    out = [KernelTime(op, kernel, func, sum(r.calls for r in rows), sum(r.avg_ms for r in rows),
                      sum(r.min_ms for r in rows), sum(r.max_ms for r in rows),
                      100.0 * sum(r.avg_ms for r in rows) / total if total > 0 else 0.0)
           for (op, kernel, func), rows in groups.items()]
    out.sort(key=lambda k: (-k.avg_ms, k.op_type, k.kernel, k.func))
    source = f"{table.kind} {table.timer.lower()} table, excluding {table.excluded} " + (
        "first run" if table.kind == "detailed" else "warm-up runs")
    return source, out
