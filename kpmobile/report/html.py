"""One self-contained HTML report of a run: inline CSS, tables, PNG plots as data URIs (pure)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kpmobile.records import PlanDevice
from kpmobile.report.plots import Plot
from kpmobile.report.table import Table
from kpmobile.safetext import strip_controls
from kpmobile.store import CaseRow, RunRow


def escape(text: object) -> str:
    """Give text from a phone or a store as HTML: escaped, without control characters."""
    return html.escape(strip_controls(text))

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px 40px;
       color: #1f2328; background: #ffffff; }
h1 { border-bottom: 3px solid #0969da; padding-bottom: 6px; }
h2 { margin-top: 32px; color: #0969da; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 5px 10px; }
th { background: #ddf4ff; text-align: center; }
td { text-align: right; }
td:first-child { text-align: left; }
tr:nth-child(even) td { background: #f6f8fa; }
.notes { color: #57606a; font-size: 13px; margin: 0 0 12px; }
.warn { color: #9a6700; }
.meta td { text-align: left; }
figure { display: inline-block; margin: 8px 12px 16px 0; }
figcaption { font-size: 13px; color: #57606a; }
img { border: 1px solid #d0d7de; max-width: 100%; }
code { background: #f6f8fa; padding: 1px 4px; }
"""


def table_html(table: Table) -> str:
    """Give a Table as an HTML <table> with its title and notes."""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = "".join(
        "<tr>" + "".join(f'<td{_cls(c)}>{escape(c)}</td>' for c in row) + "</tr>" for row in table.rows
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in table.notes)
    return (f"<h3>{escape(table.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            + (f'<ul class="notes">{notes}</ul>' if notes else ""))


def _cls(cell: str) -> str:
    return ' class="warn"' if ("slower" in cell or "failed" in cell) else ""


def plot_html(plot: Plot) -> str:
    """Give a plot as a <figure> with the PNG inlined as a base64 data URI, or a note when skipped."""
    if plot.png is None:
        return f'<p class="notes">{escape(plot.title)}: {escape(plot.note)}</p>'
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(plot.title)}</figcaption></figure>")


def _kv_table(items: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>" for k, v in items)
    return f'<table class="meta">{rows}</table>'


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def device_rows(run: RunRow, devices: Mapping[str, Mapping[str, Any]], fps: Sequence[str]) -> str:
    """Give the device fingerprints of a run as an HTML table (label, serial, brand/model, SoC, ABI, profile)."""
    header = ("Label", "Fingerprint", "Serial", "Brand / model", "SoC", "ABI", "Android", "Profile")
    body = []
    for fp in fps:
        planned = run.plan.devices.get(fp, PlanDevice())
        info = devices.get(fp, {})

        def known(key: str, info: Mapping[str, Any] = info, planned: PlanDevice = planned) -> str:
            return str(info.get(key) or planned.text(key) or "-")

        body.append((
            run.plan.device_label(fp), fp, known("serial"), f"{info.get('brand') or '-'} / {known('model')}",
            known("soc"), known("abi"), str(info.get("android_version") or "-"), known("profile"),
        ))
    return table_html(Table("Device fingerprints", header, tuple(body)))


def render_html(run: RunRow, devices: Mapping[str, Mapping[str, Any]], fps: Sequence[str],
                tables: Sequence[Table], plots: Sequence[Plot], counts: Mapping[str, int]) -> str:
    """Give the whole report of one run as a single HTML document (no external resources)."""
    plan = run.plan
    meta = [
        ("Run", run.id), ("Status", run.status), ("Started", _when(run.started)), ("Finished", _when(run.finished)),
        ("Host", run.host), ("kpmobile", run.kpmobile_version), ("Command", run.command),
        ("Models", list(plan.models)), ("Threads", list(plan.threads) or None),
        ("Cases", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"),
    ]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>kpmobile report {escape(run.id)}</title><style>{CSS}</style></head><body>",
        f"<h1>kpmobile benchmark report: run {escape(run.id)}</h1>",
        "<h2>Run</h2>", _kv_table(meta),
        "<h2>Devices</h2>", device_rows(run, devices, fps),
        "<h2>Tables</h2>", *(table_html(t) for t in tables),
        "<h2>Plots</h2>", *(plot_html(p) for p in plots),
        '<p class="notes">Written by kpmobile report html.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def html_report(run: RunRow, cases: Sequence[CaseRow], devices: Mapping[str, Mapping[str, Any]],
                flops: Mapping[str, float | None]) -> str:
    """Give the full HTML report of a run: metadata, devices, mobile/rounds/scaling tables and every plot."""
    from kpmobile.report.compare import device_order, rounds_table
    from kpmobile.report.mobile import mobile_table
    from kpmobile.report.plots import run_plots
    from kpmobile.report.scaling import emulated_labels, scaling_table, thread_scaling

    models = run.plan.models
    tables = [mobile_table(run.plan, cases), rounds_table(run, cases),
              scaling_table(thread_scaling(run, cases), models, emulated_labels(run, cases))]
    counts: dict[str, int] = {}
    for c in cases:
        counts[c.status] = counts.get(c.status, 0) + 1
    return render_html(run, devices, device_order(run, cases), tables, run_plots(run, cases, flops), counts)
