"""A rendered table as plain data, and its markdown / csv / rich forms."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from kpmobile.safetext import strip_controls


@dataclass(frozen=True)
class Table:
    """Rows of text cells under a header, plus the numbers behind them for --json."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    data: list[dict[str, Any]] = field(default_factory=list, hash=False, compare=False)
    notes: tuple[str, ...] = ()


def to_json(table: Table) -> dict[str, Any]:
    """Give the table as plain JSON types: title, header, rows (text cells), cells (the numbers), notes."""
    return {"title": table.title, "header": list(table.header), "rows": [list(r) for r in table.rows],
            "cells": table.data, "notes": list(table.notes)}


def _md(cell: str) -> str:
    """Give a markdown cell: no control characters, no newline, `|` escaped."""
    return strip_controls(cell, inline=True).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """Give the table as GitHub markdown, first column left-aligned, others centred (the seed's layout)."""
    lines = ["| " + " | ".join(map(_md, table.header)) + " |"]
    lines.append("| :" + "-" * 24 + " | " + " | ".join(":---:" for _ in table.header[1:]) + " |")
    for row in table.rows:
        lines.append("| " + " | ".join(map(_md, row)) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {strip_controls(n, inline=True)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Give the table as CSV text (control characters stripped)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([strip_controls(c) for c in table.header])
    writer.writerows([strip_controls(c) for c in row] for row in table.rows)
    return buf.getvalue()


def to_rich(table: Table) -> Any:
    """Give a rich Table of it; every title, header and cell is literal Text, never markup."""
    from rich.table import Table as RichTable
    from rich.text import Text

    def text(value: str) -> Text:
        return Text(strip_controls(value))

    rt = RichTable(title=text(table.title), show_lines=False)
    for i, name in enumerate(table.header):
        rt.add_column(text(name), justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in table.rows:
        rt.add_row(*map(text, row))
    if table.notes:
        rt.caption = text("\n".join(table.notes))
    return rt
