"""The one sweep loop: open the run, plan or resume, lease, run each case, store it, finish.

Phones and the host go through the same steps; only the CaseExecutor differs. The run is
created inside the try whose finally finishes it, so a run never stays "running": it ends
"complete", "partial" (some case failed), "interrupted" (Ctrl-C: exit 130 with the resume
command) or "failed" (with the reason and a finish time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kpmobile.errors import KpError
from kpmobile.records import BenchCase, RunPlan
from kpmobile.store import CaseRow, Store, StoreError, journal
from kpmobile.store.db import case_values
from kpmobile.store.journal import CaseJournalled
from kpmobile.sweep import costs
from kpmobile.sweep.case import CaseExecutor, CaseResult, Counters, Progress, SweepInterrupted
from kpmobile.sweep.lease import LeaseBusy
from kpmobile.sweep.plan import BenchOptions, remaining


@dataclass
class SweepOutcome:
    """What a sweep did (phones or host)."""

    kind: str
    run_id: str
    db: Path
    out_dir: Path
    counters: Counters
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False
    skipped_devices: dict[str, Any] = field(default_factory=dict)  # serial -> why the phone was not used
    skipped: int = 0  # host: cases a backend could not run
    skips: list[str] = field(default_factory=list)
    divergent: list[str] = field(default_factory=list)
    cooldown: str | None = None  # how long the cool-down waited, when it did
    energy: list[str] = field(default_factory=list)  # what to know about the energy figures

    def to_json(self) -> dict[str, Any]:
        """Give the outcome as plain JSON types."""
        c = self.counters
        data: dict[str, Any] = {
            "run_id": self.run_id, "db": str(self.db), "out_dir": str(self.out_dir),
            "conversions": c.conversions, "conversions_cached": c.conversions_cached,
            "pushes": c.pushes, "pushes_skipped": c.pushes_skipped,
            "ok": self.ok, "failed": self.failed, "failures": self.failures, "interrupted": self.interrupted,
            "skipped_devices": self.skipped_devices, "cooldown": self.cooldown, "energy": self.energy,
        }
        if self.kind == "host":
            data.update(skipped=self.skipped, skips=self.skips, divergent=self.divergent)
        return data


# Given the run's id and plan, a context manager held while its files are pushed and its cases run:
# phone sweeps hold sweep.lease.phone_leases (a lease on each of the plan's phones).
Lease = Callable[[str, RunPlan], AbstractContextManager[object]]


@contextmanager
def no_lease(run_id: str, plan: RunPlan) -> Iterator[None]:
    """Hold nothing (host sweeps)."""
    yield


class SweepStopped(KpError):
    """A write failed mid-sweep (store locked, disk full): the measured case is in the journal,
    the run is marked interrupted, and --resume stores the journal first."""


def run_sweep_cases(opts: BenchOptions, store: Store, executor: CaseExecutor, counters: Counters,
                    progress: Progress, lease: Lease = no_lease) -> SweepOutcome:
    """Open (or reopen) the run, prepare, run every case not yet stored, store each, and finish the run."""
    run_id: str | None = None
    outcome: SweepOutcome | None = None
    stopped: CaseJournalled | None = None
    status, error = "failed", "the sweep stopped before it finished"
    try:
        run_id, plan = _open(opts, store, executor, progress)
        outcome = SweepOutcome(executor.kind, run_id, store.path, opts.out_dir / run_id, counters)
        for info in executor.devices():
            store.upsert_device(info)
        journal.reserve(store.path)  # room for a measured case should the disk fill up
        store.checkpoint_in_background()  # a case's store then waits for no fsync
        with lease(run_id, plan):
            executor.prepare(run_id, outcome.out_dir)
            todo = remaining(plan.cases, store.done_keys(run_id))
            progress.start(len(todo), f"run {run_id}: {len(todo)} {_what(executor, plan)}")
            status = "interrupted" if _execute(store, run_id, todo, executor, progress) else "complete"
        error = ""
    except KeyboardInterrupt:
        status, error = "interrupted", ""
    except CaseJournalled as exc:
        journal.release_reserve(store.path)  # the space it held lets the store mark the run
        stopped, status, error = exc, "interrupted", exc.message
    except LeaseBusy:
        if not opts.resume and run_id is not None and not store.attempts(run_id):
            store.delete_run(run_id)  # refused before anything ran (--no-wait): leave no empty run behind
            run_id = None
        raise
    except KpError as exc:
        error = exc.one_line()
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if run_id is not None:
            outcome = _finish(store, executor, run_id, outcome, counters, opts, status, error or None)
    if outcome is None:  # interrupted before the run was opened: nothing to resume
        raise SweepInterrupted("interrupted before the run began: nothing was stored", "run the sweep again")
    if stopped is not None:
        raise SweepStopped(f"run {outcome.run_id} stopped: {stopped.message}",
                           f"once that is fixed, resume it with `kpmobile bench --resume {outcome.run_id} "
                           f"--db {store.path}{executor.resume_flags()}`")
    if outcome.interrupted:
        raise SweepInterrupted(
            f"interrupted: run {outcome.run_id} is stored with {outcome.ok} of {len(plan.cases)} cases done",
            f"resume it with `kpmobile bench --resume {outcome.run_id} --db {store.path}{executor.resume_flags()}`")
    return outcome


def _open(opts: BenchOptions, store: Store, executor: CaseExecutor, progress: Progress) -> tuple[str, RunPlan]:
    """Give the run's id and plan: a new run, or the resumed one reopened (status "running"; refused
    while another process runs it), with the cases its journal kept stored first."""
    if opts.resume:
        run = store.run(opts.resume)
        plan = executor.resume(run.plan)
        store.reopen_run(run.id, plan)
        replayed = journal.replay(store, run.id)
        if replayed:
            progress.note(f"stored {replayed} case(s) kept in {journal.journal_path(store.path)}")
        return run.id, plan
    plan = executor.plan()
    return store.new_run(opts.command, plan), plan


def _what(executor: CaseExecutor, plan: RunPlan) -> str:
    if executor.kind == "host":
        return "host cases"
    return f"cases on {len(plan.devices)} device(s)"


def _execute(store: Store, run_id: str, todo: Sequence[BenchCase], executor: CaseExecutor,
             progress: Progress) -> bool:
    """Run the cases, storing each as it ends; give True when the user interrupted."""
    stop = threading.Event()
    lanes: dict[str, list[BenchCase]] = {}
    for case in todo:
        lanes.setdefault(case.device, []).append(case)

    def lane(cases: Sequence[BenchCase]) -> None:
        for case in cases:
            if stop.is_set():
                return
            started = time.time()
            result = executor.run(case, stop)
            if result is None:
                continue
            _store(store, run_id, result, started)
            progress.advance(result.label)

    if not executor.parallel:
        try:
            for cases in lanes.values():
                lane(cases)
        except KeyboardInterrupt:
            stop.set()
            executor.interrupt()
            return True
        return False
    with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as pool:
        futures = [pool.submit(lane, cases) for cases in lanes.values()]
        try:
            for fut in futures:
                _wait_for(fut)
        except KeyboardInterrupt:
            # Stop the runners now, so that the workers' shells return; nothing more is started and
            # the cut-off cases are not stored (--resume runs them again).
            stop.set()
            executor.interrupt()
            return True
    return False


def _wait_for(fut: Future[None]) -> None:
    """Give nothing once the lane ended (its exception raised): a wait with a timeout, not a sleep, so
    it returns the moment the lane ends and still lets Ctrl-C through."""
    while True:
        try:
            fut.result(timeout=0.25)
            return
        except FutureTimeout:
            continue


def _store(store: Store, run_id: str, r: CaseResult, started: float) -> None:
    """Store a case's result; a store that refuses it (locked, full) leaves it in the journal and stops the sweep."""
    values = case_values(run_id, r.case, serial=r.serial, status=r.status, error=r.error,
                         numbers=r.numbers.to_columns() if r.numbers is not None else None, record=r.record,
                         raw_log=r.raw_log, extra=r.extra, model_hash=r.model_hash, artifact_hash=r.artifact_hash,
                         runner=r.runner, runner_version=r.runner_version, started=started)
    journal.store_or_journal(store, values)
    if r.op_profile is not None:  # --op-profile: stored apart from the cases
        o = r.op_profile
        store.add_op_profile(run_id, r.case, serial=r.serial, status=o.status, kernels=o.kernels, source=o.source,
                             avg_ms=o.avg_ms, error=o.error, runner=o.runner, raw_log=o.raw_log)


def _finish(store: Store, executor: CaseExecutor, run_id: str, outcome: SweepOutcome | None, counters: Counters,
            opts: BenchOptions, status: str, error: str | None) -> SweepOutcome:
    """Give the outcome from the stored cases; store it in the plan and mark the run finished."""
    out = outcome or SweepOutcome(executor.kind, run_id, store.path, opts.out_dir / run_id, counters)
    out.interrupted = status == "interrupted"
    try:
        store.checkpoint_inline()
        rows = store.cases(run_id)
        summarize(out, rows, executor)
        if status == "complete" and out.failed:
            status = "partial"
        store.finish_run(run_id, status, error)  # first: the smallest write, the likeliest to pass on a full disk
        plan = store.run(run_id).plan
        out.skipped_devices = {serial: s.to_json() for serial, s in plan.skipped.items()}
        store.set_plan(run_id, replace(plan, counters=out.to_json()))
        journal.drop_reserve(store.path)
    except StoreError:
        pass  # the store still refuses writes: the run's dead pid shows it "interrupted (process gone)"
    return out


def summarize(out: SweepOutcome, rows: Sequence[CaseRow], executor: CaseExecutor) -> None:
    """Fill the outcome's counts and lines from a run's stored cases."""
    out.ok = sum(1 for r in rows if r.status == "ok")
    out.failed = sum(1 for r in rows if r.status == "failed")
    out.skipped = sum(1 for r in rows if r.status == "skipped")
    out.failures = [f"{executor.case_name(_case_of(r), r.serial)}: {r.error}" for r in rows if r.status == "failed"]
    out.skips = skip_lines(rows)
    out.cooldown = costs.cooldown_line([r.extra for r in rows])
    out.energy = costs.energy_lines([r.extra for r in rows])
    out.divergent = []
    for r in rows:
        check = r.case_extra.check
        if r.status == "ok" and check is not None and check.ok is False:
            out.divergent.append(f"{executor.case_name(_case_of(r), r.serial)}: {check.detail}")


def skip_lines(rows: Sequence[CaseRow]) -> list[str]:
    """Give one line per skip reason: the backends and the models x batches it hit."""
    skipped: dict[str, tuple[list[str], list[str]]] = {}  # reason -> (backends, models x batches)
    for r in rows:
        if r.status != "skipped":
            continue
        backends, where = skipped.setdefault(str(r.error), ([], []))
        item = f"{r.model} bs={r.batch}"
        if r.backend not in backends:
            backends.append(r.backend)
        if item not in where:
            where.append(item)
    return [f"{', '.join(b)} on {', '.join(w[:3])}{', ...' if len(w) > 3 else ''}: {reason}"
            for reason, (b, w) in skipped.items()]


def _case_of(r: CaseRow) -> BenchCase:
    return BenchCase(model=r.model, device=r.device_fp, threads=r.threads, power_mode=r.power_mode,
                     warmup=r.warmup, repeats=r.repeats, precision=r.precision, backend=r.backend, round=r.round,
                     batch=r.batch, pipeline=r.pipeline, persons=r.persons)
