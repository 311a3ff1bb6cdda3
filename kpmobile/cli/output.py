"""One way to print: rich text on the terminal, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from kpmobile.errors import KpError

# Piped output (logs, CI) is not cut to 80 columns: wide tables stay readable.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    """Print JSON on stdout (nothing else goes there with --json)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, hint: str = "", code: int = 2) -> NoReturn:
    """Print a one-line error naming the fix and exit non-zero."""
    text = message if not hint else f"{message}; {hint}"
    err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_on(exc: KpError) -> NoReturn:
    """Exit with a KpError's one-line message."""
    fail(exc.one_line(), code=exc.exit_code)
