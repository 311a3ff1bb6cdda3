"""One entry point for `kpmobile bench`: phones or host, then the tables of the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpmobile.report.table import Table
from kpmobile.sweep.execute import BenchOutcome, Progress, run_bench
from kpmobile.sweep.plan import BenchOptions


@dataclass
class SweepResult:
    """What a sweep did and the tables it ends with."""

    outcome: BenchOutcome
    tables: list[Table] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Give the number of failed cases."""
        return self.outcome.failed

    def summary_lines(self) -> list[str]:
        """Give the lines printed above the tables."""
        from kpmobile.sweep.host import HostOutcome

        if isinstance(self.outcome, HostOutcome):
            return self.outcome.summary_lines()
        o, c = self.outcome, self.outcome.counters
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
        """Give the outcome and tables as plain JSON types."""
        data = self.outcome.to_json()
        data["tables"] = [{"title": t.title, "header": t.header, "rows": t.rows, "cells": t.data} for t in self.tables]
        if self.tables:
            data["table"] = data["tables"][0]
        return data


def run_sweep(opts: BenchOptions, progress: Progress | None = None) -> SweepResult:
    """Run the sweep `opts` describes and give its outcome with the tables to print."""
    from kpmobile.report.mobile import mobile_table, roofline_table
    from kpmobile.report.pipeline import pipeline_table
    from kpmobile.store import Store

    if opts.on_host:
        return _run_host_sweep(opts, progress)
    outcome = run_bench(opts, progress)
    store = Store(outcome.db)
    try:
        run = store.run(outcome.run_id)
        cases = store.cases(run.id)
        tables = [mobile_table(run.plan, cases)]
        extra = [roofline_table(run.plan, cases), pipeline_table(run.plan, cases)]
        tables += [t for t in extra if t is not None]
    finally:
        store.close()
    return SweepResult(outcome, tables)


def _run_host_sweep(opts: BenchOptions, progress: Progress | None) -> SweepResult:
    """Give the outcome of a host sweep with its server and complexity tables."""
    from kpmobile.report.complexity import complexity_table
    from kpmobile.report.server import server_tables
    from kpmobile.store import Store
    from kpmobile.sweep.host import run_host_bench

    outcome = run_host_bench(opts, progress)
    store = Store(outcome.db)
    try:
        run = store.run(outcome.run_id)
        cases = store.cases(run.id)
        tables = [*server_tables(run.plan, cases), complexity_table(run.plan, cases)]
    finally:
        store.close()
    return SweepResult(outcome, tables)
