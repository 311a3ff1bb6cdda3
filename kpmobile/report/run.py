"""The tables `kpmobile bench` prints after a sweep: mobile (+ roofline, pipeline) or server + complexity."""

from __future__ import annotations

from collections.abc import Sequence

from kpmobile.records import RunPlan
from kpmobile.report.table import Table
from kpmobile.store import CaseRow


def sweep_tables(plan: RunPlan, cases: Sequence[CaseRow]) -> list[Table]:
    """Give the tables of a finished sweep, by the run's kind."""
    if plan.is_host:
        from kpmobile.report.complexity import complexity_table
        from kpmobile.report.server import server_tables

        return [*server_tables(plan, cases), complexity_table(plan, cases)]
    from kpmobile.report.mobile import mobile_table, roofline_table
    from kpmobile.report.pipeline import pipeline_table

    extra = [roofline_table(plan, cases), pipeline_table(plan, cases)]
    return [mobile_table(plan, cases), *(t for t in extra if t is not None)]
