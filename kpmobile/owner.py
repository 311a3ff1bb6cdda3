"""Who holds a run or a lease: host, pid and the process's start time, and whether it still lives."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """A process on a host; `start` (clock ticks since boot) tells a reused pid from the original."""

    host: str
    pid: int
    start: int | None = None

    def describe(self) -> str:
        """Give "pid 123 on HOST", as printed to the user."""
        return f"pid {self.pid} on {self.host}"


def process_start(pid: int) -> int | None:
    """Give the start time of process `pid` in clock ticks since boot, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of stat; fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def this_process() -> Owner:
    """Give the owner record of the running process."""
    return Owner(socket.gethostname(), os.getpid(), process_start(os.getpid()))


def alive(owner: Owner) -> bool | None:
    """Tell whether `owner` still runs: None when it is on another host (it cannot be checked here)."""
    if owner.host != socket.gethostname():
        return None
    start = process_start(owner.pid)
    if start is None:
        return False
    return owner.start is None or owner.start == start
