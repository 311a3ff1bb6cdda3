"""The virtual phone's --cpus: the phone and everything it runs keep to the host CPUs it was given."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from kpmobile.devices import android
from kpmobile.devices.virtual_phone.pacing import format_cpus, parse_cpus


def test_cpu_lists_parse_and_print_back() -> None:
    allowed = frozenset(range(8))
    assert parse_cpus("0", allowed) == {0}
    assert parse_cpus("0-2,5", allowed) == {0, 1, 2, 5}
    assert format_cpus(parse_cpus("5,0-2,3", allowed)) == "0-3,5"
    for bad, said in (("x", "not a CPU list"), ("3-1", "runs backwards"), ("1-", "not a CPU list"),
                      ("", "not a CPU list"), ("9", "CPU 9 is not one")):
        with pytest.raises(ValueError, match=said):
            parse_cpus(bad, allowed)


def test_a_cpu_outside_the_host_is_one_error_line() -> None:
    outside = max(os.sched_getaffinity(0)) + 1
    res = subprocess.run([sys.executable, "-m", "kpmobile.devices.virtual_phone", "serve", "--port", "0",
                          "--cpus", str(outside)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --cpus: CPU {outside} is not one"), res.stderr


@pytest.mark.e2e
def test_shell_commands_and_their_children_keep_to_the_phones_cpus(adb_server: Any,
                                                                   virtual_phone_factory: Any) -> None:
    cpu = min(os.sched_getaffinity(0))
    phone = virtual_phone_factory(extra_args=["--cpus", str(cpu)])
    dev = android.Phone(phone.serial, adb_server.address)
    res = dev.shell("grep Cpus_allowed_list /proc/self/status; sh -c 'grep Cpus_allowed_list /proc/self/status'")
    assert res.returncode == 0, res.stderr
    assert [line.split(":")[1].strip() for line in res.stdout.splitlines()] == [str(cpu), str(cpu)]
    free = virtual_phone_factory()
    res = android.Phone(free.serial, adb_server.address).shell("grep Cpus_allowed_list /proc/self/status")
    assert res.stdout.split(":")[1].strip() == format_cpus(frozenset(os.sched_getaffinity(0)))
