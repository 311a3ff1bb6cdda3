"""kpmobile's own shell v2 reading (Phone.shell_raw) through the real adb server and the virtual phone:
stdout, stderr and the exit code apart, bytes whole, one service per shell, a silent phone timed out."""

from __future__ import annotations

import hashlib
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


@pytest.mark.e2e
def test_md5sums_answers_each_path_in_one_call(adb_server: Any, virtual_phone_factory: Any, tmp_path: Any) -> None:
    phone = virtual_phone_factory()
    dev = android.Phone(phone.serial, adb_server.address)
    names = ["a.nb", "with space.nb", "back\\slash", "new\nline", "quote'd"]
    remotes = [f"/data/local/tmp/md5/{n}" for n in names]
    dev.check(["mkdir", "-p", "/data/local/tmp/md5"])
    for i, remote in enumerate(remotes):
        local = tmp_path / f"f{i}"
        local.write_bytes(f"payload {i}".encode() * (i + 1))
        dev.push(local, remote)
    asked = [remotes[0], "/data/local/tmp/md5/missing", *remotes[1:], "/data/local/tmp/md5"]
    before = dev.round_trips
    sums = dev.md5sums(asked)
    assert dev.round_trips == before + 1
    expected = {r: hashlib.md5(f"payload {i}".encode() * (i + 1)).hexdigest() for i, r in enumerate(remotes)}
    assert sums == expected  # the missing file and the folder have no answer


def test_md5sums_are_read_by_position_and_refused_when_they_do_not_line_up() -> None:
    paths = ["/d/a", "/d/gone", "/d/b"]
    # After the y/n lines: what GNU md5sum 9.1 (this host) printed for `md5sum a 'b\x'`, an empty
    # file and "x\n" (a name with a backslash is escaped, its line led by one).
    out = "y\nn\ny\nd41d8cd98f00b204e9800998ecf8427e  a\n\\401b30e3b8b5d629635a5c613cdb7919  b\\\\x\n"
    assert android.parse_md5sums(out, paths) == {"/d/a": "d41d8cd98f00b204e9800998ecf8427e",
                                                "/d/b": "401b30e3b8b5d629635a5c613cdb7919"}
    # /d/b vanished between the test and md5sum: one digest for two `y`s is no answer at all.
    assert android.parse_md5sums("y\nn\ny\nd41d8cd98f00b204e9800998ecf8427e  /d/a\n", paths) == {}
    assert android.parse_md5sums("y\nn\n", paths) == {}  # cut short
    assert android.parse_md5sums("n\nn\nn\n", paths) == {}
    # a name with a raw newline (toybox does not escape it) splits its line: refused, so pushed again
    split = "y\nn\nn\nd41d8cd98f00b204e9800998ecf8427e  /d/new\nline\n"
    assert android.parse_md5sums(split, paths) == {}


@pytest.mark.e2e
def test_the_push_check_hashes_a_phone_file_again_only_once_it_was_written(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Any) -> None:
    from kpmobile.records import DeviceInfo
    from kpmobile.sweep.discover import Target
    from kpmobile.sweep.prepare import device_md5s

    phone = virtual_phone_factory()
    dev = android.Phone(phone.serial, adb_server.address)
    target = Target(DeviceInfo(phone.serial, "device", fingerprint=f"fp-{tmp_path.name}"), dev, "x86",
                    tmp_path / "runner", "/data/local/tmp/qc/runner", "runner", "1")
    remote = "/data/local/tmp/qc/model.nb"
    local = tmp_path / "model.nb"
    local.write_bytes(b"A" * 4096)
    dev.check(["mkdir", "-p", "/data/local/tmp/qc"])
    dev.push(local, remote)
    on_phone = phone.root / "data" / "local" / "tmp" / "qc" / "model.nb"
    wait_until_the_clock_passes(on_phone.stat().st_ctime)  # a file written this very second is hashed each time

    def check() -> tuple[dict[str, str], int]:
        before = dev.round_trips
        sums = device_md5s(target, [remote, "/data/local/tmp/qc/missing"])
        return sums, dev.round_trips - before

    assert check() == ({remote: hashlib.md5(b"A" * 4096).hexdigest()}, 2)  # stat, then md5sum
    assert check() == ({remote: hashlib.md5(b"A" * 4096).hexdigest()}, 1)  # unchanged: the stat alone
    on_phone.write_bytes(b"B" * 4096)  # same size, written in place: its ctime moves
    assert check() == ({remote: hashlib.md5(b"B" * 4096).hexdigest()}, 2)


def wait_until_the_clock_passes(stamp: float) -> None:
    """Give nothing once the wall clock's whole second is past `stamp`'s (a condition, not a guess)."""
    import time

    deadline = time.monotonic() + 5
    while int(time.time()) <= int(stamp):
        assert time.monotonic() < deadline, "the clock did not move"
        time.sleep(0.02)
