"""A rich progress bar implementing the sweep's Progress protocol."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from kpmobile.safetext import strip_controls

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class RichProgress:
    """Shows a sweep's cases as a bar and its notes as lines above it (on stderr); disabled (--json),
    it shows nothing and never imports rich (~40 ms of a start)."""

    def __init__(self, enabled: bool = True) -> None:
        self._bar: Progress | None = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def start(self, total: int, text: str) -> None:
        """Begin the bar."""
        if self._bar is not None:
            self._task = self._bar.add_task(_safe(text), total=total)

    def advance(self, text: str) -> None:
        """Count one case done."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, description=_safe(text))

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        if self._bar is not None:
            from rich.text import Text

            self._bar.console.print(Text(strip_controls(text), style="dim"), highlight=False, soft_wrap=True)


def _safe(text: str) -> str:
    """Give a bar description that the "[bold]{task.description}" column shows literally."""
    from rich.markup import escape

    return escape(strip_controls(text, inline=True))
