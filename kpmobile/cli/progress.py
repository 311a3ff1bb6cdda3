"""A rich progress bar implementing the sweep's Progress protocol."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from kpmobile.safetext import strip_controls


class RichProgress:
    """Shows a sweep's cases as a bar and its notes as lines above it (on stderr)."""

    def __init__(self, enabled: bool = True) -> None:
        self._console = Console(stderr=True)
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self._console, transient=False, disable=not enabled,
        )
        self._task: TaskID | None = None
        self._enabled = enabled

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.stop()

    def start(self, total: int, text: str) -> None:
        """Begin the bar."""
        self._task = self._bar.add_task(_safe(text), total=total)

    def advance(self, text: str) -> None:
        """Count one case done."""
        if self._task is not None:
            self._bar.update(self._task, advance=1, description=_safe(text))

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        if self._enabled:
            self._bar.console.print(Text(strip_controls(text), style="dim"), highlight=False, soft_wrap=True)


def _safe(text: str) -> str:
    """Give a bar description that the "[bold]{task.description}" column shows literally."""
    return escape(strip_controls(text, inline=True))
