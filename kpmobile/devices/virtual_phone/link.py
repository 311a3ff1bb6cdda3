"""The cable between host and virtual phone: loopback (no pacing), or a USB 2 / USB 3 link whose
bandwidth and round-trip delay the phone plays, so that figures can be read for a real cable too.

Every service the host opens costs one round trip; every byte either way goes through one shared
wire at the link's rate (USB is half duplex: a push and a shell's output share it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from kpmobile.errors import ConfigError


@dataclass(frozen=True)
class LinkSpec:
    """A link's sustained payload rate and its round-trip delay."""

    name: str
    bytes_per_s: float | None  # None: as fast as loopback goes
    round_trip_s: float


LINKS: dict[str, LinkSpec] = {
    "loopback": LinkSpec("loopback", None, 0.0),
    "usb2": LinkSpec("usb2", 35e6, 1.0e-3),  # high-speed USB as adb sees it: ~35 MB/s, ~1 ms
    "usb3": LinkSpec("usb3", 300e6, 0.3e-3),
}


def link_spec(name: str) -> LinkSpec:
    """Give the LinkSpec called `name`, or a ConfigError naming the choices."""
    try:
        return LINKS[name]
    except KeyError:
        raise ConfigError(f"unknown link '{name}'", f"use one of: {', '.join(LINKS)}") from None


class Link:
    """Paces one phone's traffic: `round_trip()` per service opened, `carry(n)` per payload."""

    def __init__(self, spec: LinkSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._busy_until = 0.0

    def round_trip(self) -> None:
        """Wait one round trip (the host's OPEN and the device's OKAY)."""
        if self.spec.round_trip_s > 0:
            time.sleep(self.spec.round_trip_s)

    def carry(self, size: int) -> None:
        """Wait until `size` bytes have crossed the wire, after what is already on it."""
        rate = self.spec.bytes_per_s
        if not rate or size <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._busy_until)
            self._busy_until = start + size / rate
            wait = self._busy_until - now
        time.sleep(wait)
