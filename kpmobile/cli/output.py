"""One way to print: rich text on the terminal, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from kpmobile.errors import KpError
from kpmobile.safetext import strip_controls

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


class _LazyConsole:
    """A rich Console made on first use: a command that prints only JSON never imports rich's console
    (~40 ms of its start)."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # Piped output (logs, CI) is not cut to 80 columns: wide tables stay readable.
            width = None if self._stderr or sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
            self._console = Console(width=width, stderr=self._stderr)
        return getattr(self._console, name)


console = _LazyConsole()
err_console = _LazyConsole(stderr=True)


def emit_json(data: Any) -> None:
    """Print JSON on stdout (nothing else goes there with --json)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def literal(text: object, style: str = "") -> Text:
    """Give `text` as rich Text shown as it is: never read as markup, control characters stripped."""
    from rich.text import Text

    return Text(strip_controls(text), style=style)


def line(*parts: object | tuple[object, str]) -> Text:
    """Give one printed line from literal parts; a (text, style) pair is styled, e.g. ("error:", "bold red")."""
    from rich.text import Text

    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append_text(literal(part[0], part[1]))
        else:
            out.append_text(literal(part))
    return out


def say(*parts: object | tuple[object, str]) -> None:
    """Print one literal line on stdout (no highlighting, never wrapped)."""
    console.print(line(*parts), highlight=False, soft_wrap=True)


def warn(text: object, label: str = "warning:") -> None:
    """Print one literal warning line on stderr."""
    err_console.print(line((label, "yellow"), " ", text), highlight=False, soft_wrap=True)


def fail(message: str, hint: str = "", code: int = 2) -> NoReturn:
    """Print a one-line error naming the fix and exit non-zero."""
    text = message if not hint else f"{message}; {hint}"
    err_console.print(line(("error:", "bold red"), " ", strip_controls(text, inline=True)),
                      highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_on(exc: KpError) -> NoReturn:
    """Exit with a KpError's one-line message."""
    fail(exc.one_line(), code=exc.exit_code)
