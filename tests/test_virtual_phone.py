"""The virtual phone through the real adb server, adbutils and the adb binary; no mocks."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import adbutils
import pytest
from conftest import GETPROP_DIR, AdbServer, KpmobileCli, PhoneFactory

from kpmobile.devices.virtual_phone import protocol as p
from kpmobile.devices.virtual_phone.launch import start_virtual_phone
from kpmobile.devices.virtual_phone.sandbox import force_x86_64, parse_getprop_dump
from kpmobile.devices.virtual_phone.server import serve
from kpmobile.errors import ConfigError, DeviceError

pytestmark = pytest.mark.e2e


def device(server: AdbServer, serial: str) -> adbutils.AdbDevice:
    return server.client().device(serial=serial)


def sandbox_processes(root: Path) -> list[int]:
    """Give the pids of processes started for the phone whose sandbox is `root`."""
    marker = f"\0KPMOBILE_VIRTUAL_ROOT={root.resolve()}\0".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = b"\0" + Path(f"/proc/{entry}/environ").read_bytes() + b"\0"
            except OSError:
                continue
            if marker in environ:
                pids.append(int(entry))
    return pids


# connection and shell -----------------------------------------------------------------------

def test_connects_as_device(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    info = {d.serial: d for d in adb_server.client().list(extended=True)}[phone.serial]
    assert info.state == "device"
    assert info.tags["model"] == "Virtual_Phone"
    features = set(device(adb_server, phone.serial).get_features().split(","))
    assert "shell_v2" in features
    assert not features & {"sendrecv_v2", "delayed_ack"}


def test_shell_v2_exit_code_and_stderr(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    ret = device(adb_server, phone.serial).shell2("echo out; echo err >&2; exit 3", v2=True)
    assert (ret.returncode, ret.stdout, ret.stderr) == (3, "out\n", "err\n")


def test_shell_v1_mixes_stderr_into_output(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    out = device(adb_server, phone.serial).shell("echo a; echo b >&2")
    assert out.split() == ["a", "b"]


def test_adb_binary_shell_and_exec_out(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    res = adb_server.adb("-s", phone.serial, "shell", "echo hi; echo oops >&2; exit 7")
    assert (res.returncode, res.stdout, res.stderr) == (7, "hi\n", "oops\n")
    res = adb_server.adb("-s", phone.serial, "exec-out", "printf raw")
    assert (res.returncode, res.stdout) == (0, "raw")


def test_shell_runs_in_sandbox(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    d = device(adb_server, phone.serial)
    assert d.shell("echo $KPMOBILE_VIRTUAL_ROOT") == str(phone.root.resolve())
    d.shell("mkdir -p /data/local/tmp/kp && echo hello > /data/local/tmp/kp/f.txt")
    assert (phone.root / "data/local/tmp/kp/f.txt").read_text() == "hello\n"
    assert d.shell("ls /data/local/tmp") == "kp"


def test_long_command_streams_and_close_kills_it(virtual_phone_factory: PhoneFactory,
                                                  adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    conn = device(adb_server, phone.serial).shell("echo started; sleep 60", stream=True)
    conn.conn.settimeout(5)
    assert conn.read_exact(8) == b"started\n"  # output arrives while the command still runs
    assert sandbox_processes(phone.root)
    conn.close()  # the host closes the stream: the command's process group must die
    deadline = time.monotonic() + 5
    while sandbox_processes(phone.root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes(phone.root) == []


def test_background_children_do_not_hold_the_shell_and_die_with_the_phone(
        virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    d = device(adb_server, phone.serial)
    started = time.monotonic()
    assert d.shell2("sleep 60 & echo bg", v2=True).stdout == "bg\n"  # the child keeps stdout open
    assert time.monotonic() - started < 3
    assert sandbox_processes(phone.root)
    phone.stop()
    assert sandbox_processes(phone.root) == []


# properties and CPU files -----------------------------------------------------------------------

def test_getprop_comes_from_profile(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory(profile="sdm660")
    d = device(adb_server, phone.serial)
    assert d.prop.model == "Redmi Note 7"
    assert d.getprop("ro.board.platform") == "sdm660"
    assert d.getprop("ro.product.cpu.abi") == "x86_64"
    assert d.getprop("ro.product.cpu.abilist") == "x86_64"
    assert d.shell2("getprop no.such.property", v2=True).stdout == "\n"
    assert "[ro.hardware]: [qcom]" in d.shell("getprop").splitlines()


@pytest.mark.parametrize("dump, platform, vendor_model", [
    ("redmi_note7.txt", "sdm660", "Redmi Note 7"),
    ("mate20.txt", "kirin980", "HMA-AL00"),
])
def test_getprop_dump_is_served_with_x86_64(virtual_phone_factory: PhoneFactory, adb_server: AdbServer,
                                            dump: str, platform: str, vendor_model: str) -> None:
    path = GETPROP_DIR / dump
    phone = virtual_phone_factory(getprop=path)
    d = device(adb_server, phone.serial)
    assert d.getprop("ro.board.platform") == platform
    assert d.getprop("ro.product.vendor.model") == vendor_model
    assert (d.getprop("ro.product.cpu.abi"), d.getprop("ro.product.cpu.abilist")) == ("x86_64", "x86_64")
    served = parse_getprop_dump(d.shell2("getprop", v2=True).stdout)
    assert served == force_x86_64(parse_getprop_dump(path.read_text()))


@pytest.mark.parametrize("profile, parts, max_khz", [
    ("kirin980", {"0x41"}, {0: "1805000", 4: "1920000", 7: "2600000"}),
    ("sdm660", {"0x51"}, {0: "1843200", 7: "2208000"}),
])
def test_cpuinfo_and_cpufreq_follow_the_profile(virtual_phone_factory: PhoneFactory, adb_server: AdbServer,
                                                 profile: str, parts: set[str], max_khz: dict[int, str]) -> None:
    phone = virtual_phone_factory(profile=profile)
    res = adb_server.adb("-s", phone.serial, "shell", "cat /proc/cpuinfo")
    lines = [line.split(":", 1) for line in res.stdout.splitlines() if ":" in line]
    fields = [(k.strip(), v.strip()) for k, v in lines]
    implementers = {v for k, v in fields if k == "CPU implementer"}
    part_list = [v for k, v in fields if k == "CPU part"]
    assert implementers == parts
    expected = {"kirin980": ["0xd05"] * 4 + ["0xd0b"] * 4, "sdm660": ["0x801"] * 4 + ["0x800"] * 4}
    assert part_list == expected[profile]
    d = device(adb_server, phone.serial)
    for core, khz in max_khz.items():
        assert d.shell(f"cat /sys/devices/system/cpu/cpu{core}/cpufreq/cpuinfo_max_freq") == khz
    assert d.shell("cat /sys/class/thermal/thermal_zone0/temp").isdigit()
    assert d.shell("cat /proc/self/status | head -1").startswith("Name:")  # /proc/<pid> stays real


# sync ---------------------------------------------------------------------------------------------

def test_push_pull_roundtrip(virtual_phone_factory: PhoneFactory, adb_server: AdbServer, tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    d = device(adb_server, phone.serial)
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(5 * 1024 * 1024))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    d.sync.push(src, "/data/local/tmp/kp/a/b/blob.bin", mode=0o644)  # parent folders get created
    landed = phone.root / "data/local/tmp/kp/a/b/blob.bin"
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == digest
    back = tmp_path / "back.bin"
    d.sync.pull("/data/local/tmp/kp/a/b/blob.bin", back)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    assert d.sync.exists("/data/local/tmp/kp/a/b/blob.bin")
    assert not d.sync.exists("/data/local/tmp/kp/missing")
    assert d.sync.stat("/data/local/tmp/kp/a/b/blob.bin").size == 5 * 1024 * 1024
    assert {f.path for f in d.sync.list("/data/local/tmp/kp/a/b")} >= {"blob.bin"}


def test_push_lands_in_root(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory()
    d = device(adb_server, phone.serial)
    d.sync.push(b"x-data", "/data/local/tmp/x")
    d.sync.push(b"card", "/sdcard/Download/y")
    assert (phone.root / "data/local/tmp/x").read_bytes() == b"x-data"
    assert (phone.root / "sdcard/Download/y").read_bytes() == b"card"
    assert d.shell("cat /sdcard/Download/y") == "card"


def test_adb_binary_push_and_pull_folder(virtual_phone_factory: PhoneFactory, adb_server: AdbServer,
                                          tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    local = tmp_path / "models"
    (local / "sub").mkdir(parents=True)
    (local / "sub" / "m.nb").write_bytes(os.urandom(300_000))
    res = adb_server.adb("-s", phone.serial, "push", str(local), "/data/local/tmp/kp")
    assert res.returncode == 0, res.stderr
    assert (phone.root / "data/local/tmp/kp/sub/m.nb").exists()  # adb's rule: a new target is the folder
    res = adb_server.adb("-s", phone.serial, "pull", "/data/local/tmp/kp", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out/sub/m.nb").read_bytes() == (local / "sub" / "m.nb").read_bytes()


def test_paths_outside_the_sandbox_are_refused(virtual_phone_factory: PhoneFactory, adb_server: AdbServer,
                                               tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    d = device(adb_server, phone.serial)
    outside = tmp_path / "outside"
    outside.mkdir()
    (phone.root / "data/local/tmp/link").symlink_to(outside)
    escape = "/data/local/tmp/" + "../" * 8 + str(outside / "escape.bin").lstrip("/")
    for target in ("/system/bin/evil", escape, "/data/local/tmp/link/evil"):
        with pytest.raises(adbutils.AdbError):
            d.sync.push(b"evil", target)
    assert list(outside.iterdir()) == []
    (tmp_path / "evil.txt").write_text("evil")
    res = adb_server.adb("-s", phone.serial, "push", str(tmp_path / "evil.txt"), "/system/")
    assert res.returncode != 0
    assert "outside the phone's storage" in res.stderr
    with pytest.raises(adbutils.AdbError):
        d.sync.read_bytes("/etc/passwd")


@pytest.mark.faults
def test_quota_fails_push_and_leaves_no_partial_file(virtual_phone_factory: PhoneFactory,
                                                     adb_server: AdbServer) -> None:
    phone = virtual_phone_factory(extra_args=["--quota", "3000000"])
    d = device(adb_server, phone.serial)
    d.sync.push(os.urandom(1_000_000), "/data/local/tmp/ok.bin")
    with pytest.raises(adbutils.AdbError):
        d.sync.push(os.urandom(2_500_000), "/data/local/tmp/big.bin")
    assert not (phone.root / "data/local/tmp/big.bin").exists()
    assert (phone.root / "data/local/tmp/ok.bin").stat().st_size == 1_000_000
    res = adb_server.adb("-s", phone.serial, "push", str(phone.root / "data/local/tmp/ok.bin"),
                         "/sdcard/a.bin")
    assert res.returncode == 0
    res = adb_server.adb("-s", phone.serial, "push", str(phone.root / "data/local/tmp/ok.bin"),
                         "/sdcard/b.bin")
    assert res.returncode != 0 and "No space left on device" in res.stderr
    assert not (phone.root / "sdcard/b.bin").exists()


# auth, host and faults ---------------------------------------------------------------------------

def test_auth_accept_and_deny(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    accepted = virtual_phone_factory(auth="accept")
    denied = virtual_phone_factory(auth="deny")
    assert adb_server.state(accepted.serial) == "device"
    assert adb_server.state(denied.serial) == "unauthorized"
    with pytest.raises(adbutils.AdbError):
        device(adb_server, denied.serial).shell("echo no")


def test_other_hosts_are_refused() -> None:
    res = subprocess.run([sys.executable, "-m", "kpmobile.devices.virtual_phone", "serve", "--port", "0",
                          "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "127.0.0.1" in res.stderr
    with pytest.raises(ConfigError):
        serve(0, host="0.0.0.0")


@pytest.mark.faults
def test_disconnect_after_drops_the_device(virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    phone = virtual_phone_factory(extra_args=["--disconnect-after", "2"])
    d = device(adb_server, phone.serial)
    assert d.shell("echo 1") == "1"
    assert d.shell("echo 2") == "2"
    with pytest.raises(adbutils.AdbError):
        d.shell("echo 3")
    deadline = time.monotonic() + 10
    while adb_server.state(phone.serial) == "device" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert adb_server.state(phone.serial) != "device"
    phone.process.wait(timeout=10)  # the phone stopped accepting and exited


def test_launcher_avoids_probed_ports_and_cleans_up() -> None:
    with start_virtual_phone() as phone:
        assert phone.port not in range(5555, 5586)
        assert phone.serial == f"127.0.0.1:{phone.port}"
        root = phone.root
        assert (root / "system/bin/getprop").exists()
    assert not phone.alive()
    assert not root.exists()



def test_a_phone_that_exits_is_reported_at_once_not_after_the_start_timeout(tmp_path: Path) -> None:
    # The start timeout is long (a loaded host is slow to start a phone); a phone that cannot start
    # must still fail with its own reason, seen when its process exits, not with "did not listen".
    with pytest.raises(DeviceError, match="exited with code"):
        start_virtual_phone(profile="no-such-profile", root=tmp_path / "root")

# the raw protocol, without an adb server -------------------------------------------------------------

class RawHost:
    """The host side of adb, by hand, to send what an adb server would only send by chance."""

    def __init__(self, port: int, max_payload: int = 4096) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.send(p.A_CNXN, p.VERSION, max_payload, b"host::features=shell_v2")
        reply = self.recv()
        assert reply.command == p.A_CNXN and reply.payload.startswith(b"device::")

    def read(self, size: int) -> bytes:
        """Give `size` bytes; no read-ahead, so that a timeout loses nothing."""
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None:
        self.sock.sendall(p.pack_header(command, arg0, arg1, len(payload)) + payload)

    def recv(self) -> p.Message:
        msg = p.read_message(self)
        assert msg is not None
        return msg

    def open(self, service: str, local_id: int = 1) -> int:
        self.send(p.A_OPEN, local_id, 0, service.encode() + b"\0")
        okay = self.recv()
        assert okay.command == p.A_OKAY and okay.arg1 == local_id
        return okay.arg0

    def close(self) -> None:
        self.sock.close()


def test_sync_requests_split_across_writes(tmp_path: Path) -> None:
    with start_virtual_phone(root=tmp_path / "root") as phone:
        (phone.root / "data/local/tmp/f.txt").write_bytes(b"12345")
        host = RawHost(phone.port)
        try:
            remote = host.open("sync:")
            request = p.SYNC_REQUEST.pack(b"STAT", len(b"/data/local/tmp/f.txt")) + b"/data/local/tmp/f.txt"
            for piece in (request[:3], request[3:6], request[6:11], request[11:]):
                host.send(p.A_WRTE, 1, remote, piece)
                assert host.recv().command == p.A_OKAY  # every WRTE is acknowledged
            reply = host.recv()
            assert reply.command == p.A_WRTE
            sid, mode, size, _mtime = struct.unpack("<4s3I", reply.payload)
            assert (sid, size, mode & 0o170000) == (b"STAT", 5, 0o100000)
        finally:
            host.close()


def test_writes_respect_max_payload_and_wait_for_okay() -> None:
    with start_virtual_phone() as phone:
        host = RawHost(phone.port, max_payload=4096)
        try:
            remote = host.open("exec:head -c 20000 /dev/zero")
            first = host.recv()
            assert first.command == p.A_WRTE and len(first.payload) == 4096
            host.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                host.recv()  # nothing more until the host says OKAY
            host.sock.settimeout(5)
            total = len(first.payload)
            while True:
                host.send(p.A_OKAY, 1, remote)
                msg = host.recv()
                if msg.command == p.A_CLSE:
                    break
                assert msg.command == p.A_WRTE and len(msg.payload) <= 4096
                total += len(msg.payload)
            assert total == 20000
        finally:
            host.close()


def test_kpmobile_virtual_phone_serve_takes_the_module_entrys_flags(adb_server: AdbServer, tmp_path: Path,
                                                                   kpmobile_cli: KpmobileCli) -> None:
    """`kpmobile virtual-phone serve` and `python -m kpmobile.devices.virtual_phone serve` share one parser:
    --abi, once only among the module's flags, works through the kpmobile CLI."""
    help_text = kpmobile_cli("virtual-phone", "serve", "--help", timeout=60)
    module_help = subprocess.run([sys.executable, "-m", "kpmobile.devices.virtual_phone", "serve", "--help"],
                                 capture_output=True, text=True, timeout=60, check=False)
    assert help_text.returncode == module_help.returncode == 0
    flags = ("--port", "--profile", "--getprop", "--auth", "--root", "--cpuinfo", "--host", "--disconnect-after",
             "--abi", "--quota", "--runner-fault", "--offline")
    assert all(f in help_text.stdout and f in module_help.stdout for f in flags)
    log = tmp_path / "phone.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "kpmobile", "virtual-phone", "serve", "--port", "0",
                                    "--root", str(tmp_path / "root"), "--abi", "arm64-v8a", "--quota", "100000"],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        serial = f"127.0.0.1:{found.group(1)}"
        adb_server.client().connect(serial, timeout=15)
        adb_server.wait_state(serial, "device")
        assert device(adb_server, serial).getprop("ro.product.cpu.abi") == "arm64-v8a"
        adb_server.client().disconnect(serial)
    finally:
        process.terminate()
        process.wait(timeout=30)


# the test-only --slowdown ------------------------------------------------------------------------

_COMMON = Path(__file__).resolve().parents[1] / "kpmobile" / "runners" / "runner_common.py"
# A CPU-bound loop, then the runners' own pacing of one iteration: prints the slowdown it saw and the
# iteration's wall over its work, both measured inside the one command (adb's round trip stays out).
_BUSY = (f"python3 -c 'import sys, time, importlib.util as u\ns = u.spec_from_file_location(\"c\", \"{_COMMON}\")\n"
         "lr = u.module_from_spec(s)\ns.loader.exec_module(lr)\n"
         "t = time.perf_counter()\nn = 0\nfor i in range(300000): n += i\nwork = time.perf_counter() - t\n"
         "lr.paced(t)\nprint(lr.SLOWDOWN, (time.perf_counter() - t) / work)'")


def test_slowdown_really_slows_the_runners_and_shows_in_devices_json(
        virtual_phone_factory: PhoneFactory, adb_server: AdbServer) -> None:
    import json

    from kpmobile.devices.virtual_phone import pacing

    phone = virtual_phone_factory(extra_args=["--slowdown", "30"])
    d = device(adb_server, phone.serial)
    assert d.getprop("kpmobile.virtual.slowdown_pct") == "30"
    listed = subprocess.run([sys.executable, "-m", "kpmobile", "devices", "--adb-server", adb_server.address,
                             "--json"], capture_output=True, text=True, timeout=120, check=True)
    assert [x["slowdown_pct"] for x in json.loads(listed.stdout) if x["serial"] == phone.serial] == [30.0]

    ret = d.shell2(_BUSY, v2=True)
    assert ret.returncode == 0, ret.stderr
    seen, ratio = (float(v) for v in ret.stdout.split())
    assert seen == 0.3 and 1.3 <= ratio < 2.0, ret.stdout  # at least 30 % longer; a loaded host may add

    pacing.set_slowdown(phone.root, 0)  # switched off at run time: no variable, no property, no stretch
    seen, ratio = (float(v) for v in d.shell2(_BUSY, v2=True).stdout.split())
    assert seen == 0 and ratio < 1.05
    assert d.getprop("kpmobile.virtual.slowdown_pct") == ""
    listed = subprocess.run([sys.executable, "-m", "kpmobile", "devices", "--adb-server", adb_server.address,
                             "--json"], capture_output=True, text=True, timeout=120, check=True)
    assert [x["slowdown_pct"] for x in json.loads(listed.stdout) if x["serial"] == phone.serial] == [None]


@pytest.mark.parametrize(("command", "expected"), [
    ("cat /data/local/tmp/a /sdcard", "cat {root}/data/local/tmp/a {root}/sdcard"),
    ("'/sys/class/thermal'/thermal_zone0", "'{root}/sys/class/thermal'/thermal_zone0"),
    ("x=/proc/cpuinfo;", "x={root}/proc/cpuinfo;"),
    # inside a longer word or path, or a longer name: left as it is
    ("x/data/local/tmp ~/sdcard -/sdcard //sdcard ./sdcard", "x/data/local/tmp ~/sdcard -/sdcard //sdcard ./sdcard"),
    ("/data/local/tmpx /sdcard.x /sdcard-2 /proc/cpuinfo_max",
     "/data/local/tmpx /sdcard.x /sdcard-2 /proc/cpuinfo_max"),
    ("/storage/emulated/0/x /storage/self/primary", "{root}/sdcard/x {root}/sdcard"),
])
def test_the_sandbox_maps_only_whole_device_paths(tmp_path: Path, command: str, expected: str) -> None:
    from kpmobile.devices.virtual_phone.sandbox import Sandbox

    sandbox = Sandbox(tmp_path / "phone")
    assert sandbox.rewrite_command(command) == expected.format(root=sandbox.root)
