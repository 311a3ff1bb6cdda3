"""kpmobile's own shell v2 reading (Phone.shell_raw) through the real adb server and the virtual phone:
stdout, stderr and the exit code apart, bytes whole, one service per shell, a silent phone timed out."""

from __future__ import annotations

from typing import Any

import pytest

from kpmobile.devices import android
from kpmobile.errors import DeviceError


@pytest.mark.e2e
def test_shell_raw_keeps_stdout_stderr_exit_code_and_bytes_apart(adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory()
    dev = android.Phone(phone.serial, adb_server.address)
    res = dev.shell_raw("printf 'out\\001\\377'; echo err >&2; exit 7")
    assert (res.returncode, res.stdout, res.stderr) == (7, b"out\x01\xff", b"err\n")
    big = dev.shell_raw("i=0; while [ $i -lt 4000 ]; do echo 0123456789abcdef0123456789abcdef0123456789abcdef; "
                        "i=$((i + 1)); done")
    assert big.returncode == 0 and big.stdout == b"0123456789abcdef0123456789abcdef0123456789abcdef\n" * 4000
    assert dev.shell(["echo", "a b", "$(x)"]).stdout == "a b $(x)\n"  # a list is quoted word by word
    before = dev.round_trips
    for _ in range(3):
        assert dev.shell("true").returncode == 0
    assert dev.round_trips == before + 3


@pytest.mark.e2e
def test_a_silent_shell_times_out_as_a_device_error(adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory()
    dev = android.Phone(phone.serial, adb_server.address)
    with pytest.raises(DeviceError, match="timed out after 0.5 s"):
        dev.shell_raw("sleep 5", timeout=0.5)
    assert dev.shell("echo back").stdout == "back\n"  # the next shell is a fresh service
