"""One entry point for `kpmobile bench`: phones or host, through the one engine; the CLI renders the tables."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.paths import default_db
from kpmobile.records import ModelSpec
from kpmobile.store import RunBusy, RunRow, Store
from kpmobile.store.db import busy_owner, held_by_another
from kpmobile.sweep.case import CaseExecutor, Counters, Progress, SilentProgress
from kpmobile.sweep.engine import Lease, SweepOutcome, no_lease, run_sweep_cases
from kpmobile.sweep.lease import host_lease, phone_leases
from kpmobile.sweep.plan import BenchOptions, check_threads, pipeline_models, resumed_options


@dataclass
class SweepResult:
    """What a sweep did; its run's tables are the report's to render."""

    outcome: SweepOutcome

    @property
    def failed(self) -> int:
        """Give the number of failed cases."""
        return self.outcome.failed

    @property
    def run_id(self) -> str:
        """Give the run's id."""
        return self.outcome.run_id

    def summary_lines(self) -> list[str]:
        """Give the lines printed above the tables."""
        o, c = self.outcome, self.outcome.counters
        if o.kind == "host":
            lines = [f"run {o.run_id} (host): {o.ok} cases ok, {o.failed} failed, {o.skipped} skipped; "
                     f"converted {c.conversions} (cached {c.conversions_cached})"]
            lines += [f"skipped: {s}" for s in o.skips]
            lines += [f"failed: {f}" for f in o.failures]
            lines += [f"outputs diverge: {d}" for d in o.divergent]
            return lines
        lines = [f"run {o.run_id}: {o.ok} cases ok, {o.failed} failed; converted {c.conversions} "
                 f"(cached {c.conversions_cached}), pushed {c.pushes} files (already on device {c.pushes_skipped})"]
        lines += [f"failed: {f}" for f in o.failures]
        lines += [line for line in (o.cooldown,) if line] + o.energy
        lines += [f"skipped phone {serial}: {entry.get('reason', entry.get('state', ''))}"
                  for serial, entry in o.skipped_devices.items()]
        if o.failures or o.skipped_devices:
            lines.append(f"once the cause is fixed, run the missing cases with: kpmobile bench --resume {o.run_id}")
        return lines

    def to_json(self) -> dict[str, Any]:
        """Give the outcome as plain JSON types."""
        return self.outcome.to_json()


def run_sweep(opts: BenchOptions, progress: Progress | None = None) -> SweepResult:
    """Run (or resume) the sweep `opts` describes, storing every case as it ends, and give its outcome."""
    from kpmobile.zoo.catalogue import resolve

    progress = progress or SilentProgress()
    store = Store(opts.db or default_db())
    counters = Counters()
    with ExitStack() as stack:
        stack.callback(store.close)
        on_host = opts.on_host
        if opts.resume:
            resumed = store.run(opts.resume)
            _refuse_busy(resumed)
            plan = resumed.plan
            if on_host and not plan.is_host:
                raise ConfigError(f"run {opts.resume} is not a host run", "resume it without --device host")
            on_host = plan.is_host
            opts = resumed_options(opts, plan)
        names = list(opts.models) if on_host else pipeline_models(opts.models, opts.pipelines)
        specs: dict[str, ModelSpec] = {spec.name: spec for spec in (resolve(m) for m in names)}
        executor: CaseExecutor
        lease: Lease = no_lease
        if on_host:
            from kpmobile.sweep.host import HostExecutor

            executor = HostExecutor(opts, specs, counters, progress, store)
            lease = host_lease(wait=not opts.no_wait, notify=progress.note)
        else:
            from kpmobile.sweep.discover import discover_phones
            from kpmobile.sweep.phone import PhoneExecutor

            found = discover_phones(opts, stack, progress)
            _check_threads(opts, found.targets, progress)
            executor = PhoneExecutor(opts, found, specs, counters, progress)
            lease = phone_leases(found.targets, wait=not opts.no_wait, notify=progress.note)
        outcome = run_sweep_cases(opts, store, executor, counters, progress, lease)
    return SweepResult(outcome)


def _check_threads(opts: BenchOptions, targets: Sequence[Any], progress: Progress) -> None:
    """Note thread counts above a phone's cores, before a run exists (unless --allow-oversubscribe)."""
    if opts.resume:
        return
    # Warned, not refused: the seed's 1 and 4 threads are the table even on a 2-core (virtual) phone.
    if opts.allow_oversubscribe:
        return
    for t in targets:
        warning = check_threads(opts.phone_threads, len(t.all_cores), t.info.serial, True)
        if warning:
            progress.note(f"warning: {warning} (the figures include the oversubscription; "
                          f"--allow-oversubscribe silences this)")


def _refuse_busy(run: RunRow) -> None:
    """Refuse early (before phones are touched) to resume a run another live process runs; the engine's
    claim makes it final."""
    if held_by_another(run):
        raise RunBusy(f"run {run.id} is being run by {busy_owner(run)}",
                      "wait for it to finish, or resume it from that host once it stops")
