"""What the sweep engine and its executors share: progress, counters, a case's result, the executor protocol."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kpmobile.errors import KpError
from kpmobile.records import BenchCase, CaseExtra, DeviceInfo, RunPlan
from kpmobile.sweep.costs import OpProfileOutcome


class SweepInterrupted(KpError):
    """The user stopped the sweep (SIGINT): what finished is stored; --resume runs the rest."""

    exit_code = 130


class Progress(Protocol):
    """Where a sweep reports what it is doing (a rich progress bar in the CLI)."""

    def start(self, total: int, text: str) -> None: ...

    def advance(self, text: str) -> None: ...

    def note(self, text: str) -> None: ...


class SilentProgress:
    """A Progress that shows nothing."""

    def start(self, total: int, text: str) -> None:
        """Ignore the start."""

    def advance(self, text: str) -> None:
        """Ignore a step."""

    def note(self, text: str) -> None:
        """Ignore a note."""


@dataclass
class Counters:
    """Work done outside the runner, which a warm second sweep should not repeat."""

    conversions: int = 0
    conversions_cached: int = 0
    pushes: int = 0
    pushes_skipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        """Add to the named counters."""
        with self.lock:
            for key, value in kw.items():
                setattr(self, key, getattr(self, key) + value)

    def converted(self, cached: bool) -> None:
        """Count one conversion, cached or made."""
        self.add(**{"conversions_cached" if cached else "conversions": 1})


@dataclass(frozen=True)
class Numbers:
    """A case's latencies in ms, as the store's columns hold them."""

    avg_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    first_ms: float | None = None
    init_ms: float | None = None

    def to_columns(self) -> dict[str, float | None]:
        """Give the numbers by store column."""
        return {"avg_ms": self.avg_ms, "min_ms": self.min_ms, "max_ms": self.max_ms, "first_ms": self.first_ms,
                "init_ms": self.init_ms}


@dataclass(frozen=True)
class CaseResult:
    """What one case gave: stored by the engine the moment it comes back."""

    case: BenchCase
    serial: str
    status: str  # "ok" | "failed" | "skipped"
    error: str | None = None
    numbers: Numbers | None = None
    record: dict[str, Any] | None = None
    raw_log: str | None = None
    extra: CaseExtra | None = None
    model_hash: str | None = None
    artifact_hash: str | None = None
    runner: str | None = None
    runner_version: str | None = None
    label: str = ""  # the progress bar's text for it
    op_profile: OpProfileOutcome | None = None  # --op-profile: the cell's extra profiling invocation


class CaseExecutor(Protocol):
    """Runs a sweep's cases on one kind of target (phones over adb, or the host's backends).

    The engine calls plan (or resume), devices, prepare, then run for each case, and interrupt
    once when the user stops the sweep.
    """

    kind: str  # "phone" | "host": the plan's kind
    parallel: bool  # one worker thread per device (phones), or every case in the calling thread (host)

    def plan(self) -> RunPlan:
        """Give a new run's plan."""
        ...

    def resume(self, plan: RunPlan) -> RunPlan:
        """Give a resumed run's plan (checked against what is attached; phones ready now adopted)."""
        ...

    def devices(self) -> Sequence[DeviceInfo]:
        """Give the devices the run uses, to record their fingerprints."""
        ...

    def prepare(self, run_id: str, out_dir: Path) -> None:
        """Build, convert and stage what the cases need."""
        ...

    def run(self, case: BenchCase, stop: threading.Event) -> CaseResult | None:
        """Give the result of one case, or None when `stop` cut it off (--resume runs it again)."""
        ...

    def interrupt(self) -> None:
        """Stop what runs now (the user pressed Ctrl-C)."""
        ...

    def case_name(self, case: BenchCase, serial: str) -> str:
        """Give how a failed case is named in the summary."""
        ...

    def resume_flags(self) -> str:
        """Give the flags the resume command needs besides --resume and --db."""
        ...
