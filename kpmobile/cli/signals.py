"""SIGINT, SIGTERM and SIGHUP all stop a sweep the same way: the first raises KeyboardInterrupt
(the sweep stores what it has, marks the run interrupted and prints the --resume line); later
ones while it stops are noted and ignored, so the resume line is always printed."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Give a block in which the stop signals interrupt once, then are ignored while it cleans up."""
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt(signal.Signals(signum).name)
        sys.stderr.write(f"{signal.Signals(signum).name}: already stopping; the run is being saved\n")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        if not fired:  # once stopping, later signals stay ignored until the process has printed and exited
            for sig, old in previous.items():
                signal.signal(sig, old)
