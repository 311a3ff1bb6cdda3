"""Issue 7, security: hostile names reach the device shell quoted, pulled files stay in the output
folder, and the virtual phone listens on loopback only."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, AdbServer, run_kpmobile

from kpmobile.devices import android
from kpmobile.errors import DeviceError

pytestmark = [pytest.mark.faults]



def hostile(tag: str) -> str:
    """Give a name (one path component) that runs `touch` three times if it ever reaches a shell unquoted."""
    return f"x y'\"; touch PWNED-{tag}; $(touch PWNED2-{tag}) `touch PWNED3-{tag}` && touch PWNED4-{tag}"


def pwned(tag: str, *roots: Path) -> list[Path]:
    """Give the files the hostile name's commands would have made, wherever a shell may have run them."""
    names = {f"PWNED{n}-{tag}" for n in ("", "2", "3", "4")}
    found = [p for folder in (Path("/tmp"), Path.cwd(), Path.home()) for p in folder.glob("PWNED*") if p.name in names]
    for root in roots:
        found += [p for p in root.rglob("PWNED*") if p.name in names]
    return found


@pytest.mark.e2e
@pytest.mark.slow
def test_hostile_model_dir_runs_quoted_and_executes_nothing(adb_server: AdbServer, virtual_phone_factory: Any,
                                                            tmp_path: Path) -> None:
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve

    tag = uuid.uuid4().hex[:8]
    phone = virtual_phone_factory()
    model = tmp_path / "models" / hostile(tag)
    shutil.copytree(ensure_model(resolve("pp-tinypose-128x96")), model)
    out = tmp_path / "out"
    res = run_kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(tmp_path / "kp.db"),
                       "--out", str(out), "--models", str(model), "--threads", "1", *FAST, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    with sqlite3.connect(tmp_path / "kp.db") as db:
        rows = db.execute("SELECT status, avg_ms FROM cases").fetchall()
    assert len(rows) == 1 and rows[0][0] == "ok" and rows[0][1] > 0  # the case ran, with its name quoted
    assert pwned(tag, phone.root, tmp_path) == []
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_shell_words_are_quoted_on_the_device(adb_server: AdbServer, virtual_phone_factory: Any,
                                              tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    vphone = virtual_phone_factory()
    phone = android.Phone(vphone.serial, adb_server.address)
    word = hostile(tag)
    res = phone.shell(["echo", word])
    assert res.returncode == 0 and res.stdout.rstrip("\n") == word
    remote = f"/data/local/tmp/{word}.txt"
    local = tmp_path / "in.txt"
    local.write_text("payload")
    phone.push(local, remote)
    assert phone.md5sums([remote]) and phone.exists(remote)
    assert phone.check(["cat", remote]) == "payload"
    assert pwned(tag, vphone.root, tmp_path) == []


@pytest.mark.parametrize("name", ["../../escape.txt", "/etc/passwd", "..", "a/../../b.txt", "..\\..\\w.txt", ""])
def test_pulled_files_stay_in_the_output_folder(adb_server: AdbServer, virtual_phone_factory: Any,
                                                tmp_path: Path, name: str) -> None:
    vphone = virtual_phone_factory()
    (vphone.root / "data/local/tmp/res.txt").write_text("result")
    phone = android.Phone(vphone.serial, adb_server.address)
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    before = set(tmp_path.rglob("*"))
    target = phone.pull_into("/data/local/tmp/res.txt", out, name=name)
    assert target.parent == out.resolve() and target.read_text() == "result"
    assert set(tmp_path.rglob("*")) - before == {target}
    # a remote name with ../ in it: the file is named after its last part, inside `out`
    target = phone.pull_into("/data/local/tmp/kp/../res.txt", out)
    assert target == out.resolve() / "res.txt"


def test_safe_child_never_leaves_the_folder(tmp_path: Path) -> None:
    for name in ("../x", "/abs/y", "a/../../z", "..", ".", "\\..\\w", "$(touch p)", "x; rm -rf /"):
        assert android.safe_child(tmp_path, name).parent == tmp_path.resolve()


def test_hostile_serials_fail_cleanly(adb_server: AdbServer) -> None:
    tag = uuid.uuid4().hex[:8]
    phone = android.Phone(hostile(tag), adb_server.address)
    with pytest.raises(DeviceError) as err:
        phone.shell(["echo", "hi"])
    assert "\n" not in err.value.one_line()
    assert pwned(tag) == []


def _outside_address() -> str | None:
    """Give an address of this machine other than loopback, or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            addr = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_virtual_phone_listens_on_loopback_only(virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory()
    out = subprocess.run(["ss", "-ltnH", f"sport = :{phone.port}"], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        assert all(line.split()[3] == f"127.0.0.1:{phone.port}" for line in out.stdout.strip().splitlines())
    addr = _outside_address()
    if addr is not None:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((addr, phone.port)) != 0
    for host in ("0.0.0.0", "::", "192.168.1.10", "localhost6"):
        res = subprocess.run([sys.executable, "-m", "kpmobile.devices.virtual_phone", "serve", "--port", "0",
                              "--host", host], capture_output=True, text=True, timeout=60)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and "127.0.0.1" in lines[0], res.stderr
