"""The virtual phone's --link: a USB cable's bandwidth and round trip, played on loopback."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from kpmobile.devices import android
from kpmobile.devices.virtual_phone.link import LINKS, Link, link_spec
from kpmobile.errors import ConfigError


def test_carrying_takes_at_least_size_over_rate_and_shares_one_wire() -> None:
    link = Link(LINKS["usb2"])
    start = time.monotonic()
    for _ in range(10):
        link.carry(350_000)  # 3.5 MB in all: 0.1 s at 35 MB/s
    assert time.monotonic() - start >= 0.1 * 0.98
    loop = Link(LINKS["loopback"])
    loop.carry(10**9)  # no pacing on loopback, whatever the size
    loop.round_trip()
    with pytest.raises(ConfigError, match="usb4"):
        link_spec("usb4")


@pytest.mark.e2e
def test_usb2_paces_pushes_and_round_trips(adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    phone = virtual_phone_factory(extra_args=["--link", "usb2"])
    assert "link=usb2" in phone.log_text()
    dev = android.Phone(phone.serial, adb_server.address)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(7_000_000))
    start = time.monotonic()
    dev.push(blob, "/data/local/tmp/blob.bin")
    assert time.monotonic() - start >= 7_000_000 / 35e6 * 0.98  # 0.2 s at least
    assert (phone.root / "data" / "local" / "tmp" / "blob.bin").read_bytes() == blob.read_bytes()
    start = time.monotonic()
    for _ in range(20):
        assert dev.shell("true").returncode == 0
    assert time.monotonic() - start >= 20 * 1e-3
