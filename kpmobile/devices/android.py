"""Phones reached through adb servers. The only module that imports adbutils."""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import re
import shlex
import socket
import stat
import struct
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple, TypeVar

from kpmobile.devices import framing, identify
from kpmobile.errors import DeviceError, KpError
from kpmobile.records import DeviceInfo

# adbutils imports requests (to install APKs from URLs) when it is imported; kpmobile never
# does, and requests with urllib3 cost about 0.2 s of start-up.
DEFERRED_IMPORTS = ("requests",)


def _defer(name: str) -> None:
    """Put a stand-in for module `name` in sys.modules that imports the real one on first use."""
    if name in sys.modules:
        return
    stand_in = types.ModuleType(name, f"{name}, imported on first use (kpmobile.devices.android)")

    def load(attr: str) -> Any:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attr)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[name] = stand_in


for _name in DEFERRED_IMPORTS:
    _defer(_name)

import adbutils  # noqa: E402
from adbutils.errors import AdbError, AdbTimeout  # noqa: E402


@dataclass(frozen=True)
class ShellResult:
    """What a device shell command gave back."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class RawShellResult:
    """What a device shell command gave back, as bytes (framed streams count bytes)."""

    returncode: int
    stdout: bytes
    stderr: bytes


def default_server() -> str:
    """Give the local adb server address, honouring ANDROID_ADB_SERVER_PORT."""
    return f"127.0.0.1:{int(os.environ.get('ANDROID_ADB_SERVER_PORT') or 5037)}"


def parse_server(text: str) -> tuple[str, int]:
    """Give (host, port) of an adb server written HOST:PORT (or PORT)."""
    host, _, port = text.rpartition(":")
    try:
        return (host or "127.0.0.1", int(port))
    except ValueError:
        raise DeviceError(f"bad adb server address '{text}'", "write it as HOST:PORT, e.g. 127.0.0.1:5037") from None


T = TypeVar("T")
_TCP_SERIAL = re.compile(r"[\w.\-]+:\d+")
_known_tcp: dict[str, set[str]] = {}  # server -> TCP devices seen there, re-connected after a restart
_restarted_at: dict[str, float] = {}
_restart_lock = threading.Lock()
RESTART_GRACE_S = 60.0  # a command failing this soon after a server restart is tried once more


def client_for(server: str) -> adbutils.AdbClient:
    """Give an adbutils client of `server`, starting a local server if none listens (and, when one
    died under us, re-connecting the TCP devices it had)."""
    host, port = parse_server(server)
    if host in ("127.0.0.1", "localhost"):
        _ensure_local(server, host, port)
    return _Client(host=host, port=port, socket_timeout=30)


class _Client(adbutils.AdbClient):  # type: ignore[misc]  # adbutils ships no types: Any under --strict
    """An adbutils client that asks its server's version once: adbutils asks it before opening
    every device transport (one more connection, and a 10 ms sleep on close, per command). The
    connection that asks is closed at once (adbutils' close sleeps 10 ms after its half-close)."""

    _version: int | None = None

    def server_version(self) -> int:
        """Give the adb server's version (cached)."""
        if self._version is None:
            c = self.make_connection()
            try:
                c.send_command("host:version")
                c.check_okay()
                self._version = int(c.read_string_block(), 16)
            finally:
                c.conn.close()
        return self._version


def remember(server: str, serial: str) -> None:
    """Note a TCP device of `server`, so that a restarted server gets it back (`adb connect`)."""
    if _TCP_SERIAL.fullmatch(serial):
        with _restart_lock:
            _known_tcp.setdefault(server, set()).add(serial)


def _ensure_local(server: str, host: str, port: int) -> bool:
    """Give True when the local server had died and was started again (with its TCP devices)."""
    from kpmobile.devices.adbserver import ensure_server, server_alive

    if server_alive(host, port):
        return False
    with _restart_lock:
        if server_alive(host, port):
            return server in _restarted_at
        ensure_server(host, port)
        serials = sorted(_known_tcp.get(server, ()))
        if serials:
            _restarted_at[server] = time.monotonic()
        client = adbutils.AdbClient(host=host, port=port, socket_timeout=30)
        for serial in serials:
            _reconnect(client, serial)
    return bool(serials)


def _reconnect(client: adbutils.AdbClient, serial: str, timeout: float = 15) -> None:
    """Give nothing once `serial` is back as "device" on the restarted server, or `timeout` passed."""
    deadline = time.monotonic() + timeout
    try:
        client.connect(serial, timeout=timeout)
        while time.monotonic() < deadline:
            if any(e.serial == serial and e.state == "device" for e in client.list()):
                return
            time.sleep(0.1)
    except (AdbError, AdbTimeout, OSError):
        pass  # the phone may really be gone: its commands then fail with the usual message


def server_came_back(server: str) -> bool:
    """Give True when `server` had died and is running again now (restarted here or just before)."""
    host, port = parse_server(server)
    if host not in ("127.0.0.1", "localhost"):
        return False
    if _ensure_local(server, host, port):
        return True
    with _restart_lock:
        at = _restarted_at.get(server)
    return at is not None and time.monotonic() - at < RESTART_GRACE_S


def connect(server: str, address: str, timeout: float = 15) -> None:
    """Ask `server` to connect to a TCP device at `address` (adb connect)."""
    remember(server, address)
    try:
        answer = client_for(server).connect(address, timeout=timeout)
    except (AdbError, AdbTimeout, OSError) as exc:
        raise DeviceError(f"adb connect {address} failed ({exc})",
                          "check the address and that the phone listens") from exc
    if "unable" in answer.lower() or "failed" in answer.lower():
        raise DeviceError(f"adb connect {address} failed: {answer}", "check the address and that the phone listens")


def disconnect(server: str, address: str) -> None:
    """Drop a TCP device from `server`; quiet when it is already gone."""
    try:
        client_for(server).disconnect(address)
    except (AdbError, AdbTimeout, OSError, DeviceError):
        pass


class Phone:
    """One device on one adb server: quoted shell commands, pushes and pulls."""

    def __init__(self, serial: str, server: str) -> None:
        self.serial = serial
        self.server = server
        self._dev = client_for(server).device(serial=serial)
        self.round_trips = 0  # services opened on the device: shells, pushes, stats, pulls
        self._features: set[str] | None = None  # the device's adb features, asked once
        remember(server, serial)

    def _retrying(self, action: Callable[[], T]) -> T:
        """Give what `action` gives; when it failed because the adb server died, restart the server,
        re-connect its TCP devices and try once more."""
        try:
            return action()
        except AdbTimeout:
            raise
        except (AdbError, OSError, EOFError):
            if not server_came_back(self.server):
                raise
        return action()

    # shell ------------------------------------------------------------------------------
    def _trip(self, action: Callable[[], T]) -> T:
        """Give what `action` gives, counting it as one device round trip (each try)."""
        def counted() -> T:
            self.round_trips += 1
            return action()

        return self._retrying(counted)

    def shell(self, argv: Sequence[str] | str, timeout: float | None = 120) -> ShellResult:
        """Give the exit code, stdout and stderr of a command; a list is quoted word by word."""
        raw = self.shell_raw(argv, timeout)
        return ShellResult(raw.returncode, raw.stdout.decode("utf-8", "replace"),
                           raw.stderr.decode("utf-8", "replace"))

    def shell_raw(self, argv: Sequence[str] | str, timeout: float | None = 120) -> RawShellResult:
        """Give the exit code, stdout and stderr bytes of a command; a list is quoted word by word."""
        command = argv if isinstance(argv, str) else shlex.join(argv)
        try:
            return self._trip(lambda: self._shell_v2(command, timeout))
        except AdbTimeout as exc:
            raise DeviceError(f"{self.serial}: command timed out after {timeout} s: {command[:80]}",
                              "the phone may be hung; re-plug it and use --resume") from exc
        except (AdbError, OSError, EOFError) as exc:
            raise _device_error(self.serial, exc) from exc

    def _shell_v2(self, command: str, timeout: float | None) -> RawShellResult:
        """Run `command` over the shell v2 protocol (stdout, stderr and the exit code apart), read as
        adbutils reads it, but closed at once: adbutils' close sleeps 10 ms after its half-close, on
        every shell, which is after the exit code came, so the half-close tells the phone nothing.
        A phone without shell v2 (Android < 7) gets adbutils' own shell, with its fallback."""
        if self._features is None:
            self._features = self._read_features(timeout)
        if "shell_v2" not in self._features:
            ret = self._dev.shell2(command, timeout=timeout, encoding=None, v2=True)
            return RawShellResult(ret.returncode, ret.stdout or ret.output or b"", ret.stderr or b"")
        c = self._dev.open_transport(timeout=timeout)
        try:
            c.send_command(f"shell,v2:{command}")
            c.check_okay()
            out: dict[int, list[bytes]] = {1: [], 2: []}
            while True:
                header = c.read_exact(5)
                length = int.from_bytes(header[1:5], "little")
                data = c.read_exact(length) if length else b""
                if header[0] == 3 and data:
                    return RawShellResult(data[0], b"".join(out[1]), b"".join(out[2]))
                if header[0] in out:
                    out[header[0]].append(data)
        finally:
            c.conn.close()

    def _read_features(self, timeout: float | None) -> set[str]:
        """Give the device's adb features (`host-serial:SERIAL:features`), the socket closed at once."""
        c = self._dev.open_transport("features", timeout=timeout)
        try:
            return set(c.read_string_block().split(","))
        finally:
            c.conn.close()

    def check(self, argv: Sequence[str] | str, timeout: float | None = 120) -> str:
        """Give the stdout of a command that must succeed."""
        res = self.shell(argv, timeout)
        if res.returncode != 0:
            cmd = argv if isinstance(argv, str) else shlex.join(argv)
            raise DeviceError(f"{self.serial}: `{cmd[:80]}` exited {res.returncode}: {res.stderr.strip()[:200]}",
                              "check the phone's storage and permissions")
        return res.stdout

    def getprops(self) -> dict[str, str]:
        """Give every getprop property."""
        return identify.parse_getprop(self.check(["getprop"]))

    def read_text(self, path: str) -> str:
        """Give a device text file's content, or '' when it cannot be read."""
        res = self.shell(["cat", path])
        return res.stdout if res.returncode == 0 else ""

    # files ------------------------------------------------------------------------------
    def md5sums(self, paths: Sequence[str]) -> dict[str, str]:
        """Give path -> md5 for the files that exist on the device: one shell call and one `md5sum`
        for all of them (see each_file_script)."""
        if not paths:
            return {}
        return parse_md5sums(self.shell(each_file_script(paths, "md5sum")).stdout, paths)

    def md5sums_at(self, paths: Sequence[str]) -> tuple[dict[str, str], int | None]:
        """Give (path -> md5, the phone's clock in whole seconds just before hashing, None if unread),
        in one shell call."""
        if not paths:
            return {}, None
        out = self.shell("date +%s 2>/dev/null; " + each_file_script(paths, "md5sum")).stdout
        head, _, rest = out.partition("\n")
        now = int(head) if head.strip().isdigit() else None
        return parse_md5sums(rest, paths), now

    def identities(self, paths: Sequence[str]) -> dict[str, FileIdentity]:
        """Give path -> FileIdentity of the files that exist on the device, from one shell call and
        one `stat`: what changes when a file is written, as git's index and rsync's quick check
        know it, without reading the file."""
        if not paths:
            return {}
        answers = _by_position(self.shell(each_file_script(paths, f"stat -c '{STAT_IDENTITY}'")).stdout,
                               paths)
        return {p: ident for p, a in answers.items() if (ident := FileIdentity.parse(a)) is not None}

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy a host file to the device, creating parent folders."""
        try:
            self._trip(lambda: self._send(local, remote, mode))
        except (AdbError, OSError, EOFError) as exc:
            text = str(exc)
            if "space" in text.lower() or "quota" in text.lower():
                self.shell(["rm", "-f", remote])
                raise DeviceError(f"{self.serial}: no space left on device while pushing {local.name}",
                                  "free storage on the phone (adb shell rm ...) and run again with --resume") from exc
            raise _device_error(self.serial, exc) from exc

    def _send(self, local: Path, remote: str, mode: int) -> None:
        """Push with sync SEND, keeping the device's FAIL message (adbutils drops it: "FAIL" only)."""
        spec = f"{remote},{stat.S_IFREG | mode}".encode()
        with self._dev.open_transport(timeout=None) as c, local.open("rb") as fh:
            c.send_command("sync:")
            c.check_okay()
            try:
                c.conn.sendall(b"SEND" + struct.pack("<I", len(spec)) + spec)
                _send_data(c.conn, fh)
                c.conn.sendall(b"DONE" + struct.pack("<I", int(time.time())))
            except OSError:
                pass  # the device may have failed the push and closed: its reply says why
            status = c.read_string(4)
            if status == "OKAY":
                return
            if status == "FAIL":
                size = struct.unpack("<I", c.read(4))[0]
                raise AdbError(f"push {remote} failed: {c.read_string(size)}")
            raise AdbError(f"push {remote} failed: unexpected sync reply {status!r}")

    def exists(self, remote: str) -> bool:
        """Tell whether a device path exists."""
        try:
            return bool(self._trip(lambda: self._dev.sync.exists(remote)))
        except (AdbError, OSError, EOFError) as exc:
            raise _device_error(self.serial, exc) from exc

    def pull_into(self, remote: str, out_dir: Path, name: str | None = None) -> Path:
        """Copy a device file into `out_dir` under a safe name; never write outside `out_dir`."""
        target = safe_child(out_dir, name or PurePosixPath(remote).name)
        if not self.exists(remote):
            raise DeviceError(f"{self.serial}: {remote} does not exist on the device",
                              "the runner wrote no result file; see the stored raw log")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._trip(lambda: self._dev.sync.pull_file(remote, str(target)))  # exists() was the stat
        except (AdbError, OSError, EOFError) as exc:
            raise _device_error(self.serial, exc) from exc
        return target


def each_file_script(paths: Sequence[str], command: str) -> str:
    """Give a shell script printing, for each of `paths` in order, `y` (a readable file) or `n`, then
    the output of ONE `command FILES...` over the readable ones, a line per file. The answers are
    read by position, never by the names a command prints: a phone may print a path otherwise
    than it was given (escaped, or rewritten)."""
    words = " ".join(shlex.quote(p) for p in paths)
    return (f'set --; for f in {words}; do if [ -f "$f" ] && [ -r "$f" ]; then set -- "$@" "$f"; echo y; '
            f'else echo n; fi; done; [ $# -eq 0 ] || {command} "$@" 2>/dev/null; true')


class FileIdentity(NamedTuple):
    """What `stat` says of a device file that changes whenever the file is written (whole seconds)."""

    size: int
    mtime_s: int
    ctime_s: int  # moves with every write and chmod; cannot be set back
    inode: int

    @classmethod
    def parse(cls, line: str) -> FileIdentity | None:
        """Give the identity in a line `stat -c STAT_IDENTITY` printed, or None for anything else."""
        parts = line.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return None
        size, mtime, ctime, inode = (int(p) for p in parts)
        return cls(size, mtime, ctime, inode)


STAT_IDENTITY = "%s %Y %Z %i"  # toybox and GNU stat: FileIdentity's fields, in order


def _by_position(text: str, paths: Sequence[str]) -> dict[str, str]:
    """Give path -> its answer line from each_file_script's output; nothing at all when the answers
    do not line up with the `y`s (a file gone between the test and the command, a name that split
    its line): a file without an answer is pushed again, never wrongly kept."""
    lines = text.splitlines()
    flags, rest = lines[:len(paths)], [line for line in lines[len(paths):] if line.strip()]
    if len(flags) < len(paths) or any(f not in ("y", "n") for f in flags):
        return {}
    readable = [p for p, f in zip(paths, flags) if f == "y"]
    return dict(zip(readable, rest)) if len(rest) == len(readable) else {}


def parse_md5sums(text: str, paths: Sequence[str]) -> dict[str, str]:
    """Give path -> md5 (lower case) from each_file_script(paths, "md5sum")'s output (GNU md5sum
    starts the line of an escaped name with a backslash); nothing at all when an answer is not a
    digest or the answers do not line up."""
    answers = {p: line.lstrip("\\").split(" ", 1)[0].lower() for p, line in _by_position(text, paths).items()}
    if not all(len(d) == 32 and set(d) <= set("0123456789abcdef") for d in answers.values()):
        return {}
    return answers


def safe_child(folder: Path, name: str) -> Path:
    """Give `folder/name` with `name` reduced to a plain file name that stays inside `folder`."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base).lstrip(".")
    if not base:
        base = "file-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    root = folder.resolve()
    target = (root / base).resolve()
    if target.parent != root:
        raise DeviceError(f"refusing to write pulled file '{name}' outside {root}", "rename the file on the device")
    return target


def _device_error(serial: str, exc: BaseException) -> DeviceError:
    text = str(exc)
    low = text.lower()
    if "unauthorized" in low:
        return DeviceError(f"{serial} is unauthorized",
                           "unlock the phone and accept the 'Allow USB debugging' prompt, then run again")
    if "offline" in low:
        return DeviceError(f"{serial} is offline", "re-plug the cable or run `adb reconnect`, then --resume")
    if "not found" in low:
        return DeviceError(f"{serial} is no longer attached", "re-plug the phone, then run again with --resume")
    return DeviceError(f"{serial}: adb failed ({text.strip()[:200]})",
                       "check the cable and `kpmobile devices`, then run again with --resume")


# listing ---------------------------------------------------------------------------------
def list_devices(servers: Iterable[str] | None = None, with_cpu: bool = True) -> list[DeviceInfo]:
    """Give every device of every adb server, identified, the same phone once."""
    seen: dict[str, DeviceInfo] = {}
    for server in list(servers or []) or [default_server()]:
        try:
            entries = client_for(server).list()
        except (AdbError, AdbTimeout, OSError, ConnectionError) as exc:
            raise DeviceError(f"adb server {server} did not answer ({exc})",
                              "start it with `adb -a nodaemon server` on that host, or fix --adb-server") from exc
        for entry in entries:
            remember(server, entry.serial)
            info = describe(entry.serial, entry.state, server, with_cpu=with_cpu)
            key = info.fingerprint or f"{server}/{info.serial}"
            seen.setdefault(key, info)
    return list(seen.values())


def describe(serial: str, state: str, server: str, with_cpu: bool = True) -> DeviceInfo:
    """Give what kpmobile knows of one device entry; only a ready device is asked (in one shell call)."""
    if state != "device":
        hint = {
            "unauthorized": "accept the 'Allow USB debugging' prompt on the phone",
            "offline": "re-plug the cable or run `adb reconnect`",
        }.get(state, "check the cable")
        return DeviceInfo(serial=serial, state=state, server=server, warnings=(f"{serial} is {state}: {hint}",))
    found = read_identity(Phone(serial, server), with_cpu)
    props = found.props
    cpu = identify.identify_cpu(props, found.cpuinfo, found.present, found.cpufreq)
    abis = identify.abis_from_props(props)
    return DeviceInfo(
        serial=serial,
        state=state,
        server=server,
        brand=props.get("ro.product.brand"),
        model=props.get("ro.product.model"),
        device=props.get("ro.product.device"),
        abi=abis[0] if abis else None,
        abis=abis,
        android_version=props.get("ro.build.version.release"),
        api_level=_to_int(props.get("ro.build.version.sdk")),
        soc=cpu.soc,
        profile=cpu.profile.name,
        fingerprint=identify.fingerprint(props, serial),
        clusters=cpu.clusters if with_cpu else (),
        big_cores=cpu.big_cores if with_cpu else identify.big_cores((), cpu.profile if cpu.profile.name != "generic"
                                                                    else None),
        warnings=cpu.warnings,
        peak_gflops=cpu.peak_gflops if with_cpu else cpu.profile.peak_gflops,
        emulated=identify.emulated_from_props(props),
        slowdown_pct=identify.slowdown_from_props(props),
    )


@dataclass(frozen=True)
class Identity:
    """What one identification call read from a phone: its properties and the raw CPU texts,
    which identify.identify_cpu reads (pure)."""

    props: dict[str, str]
    cpuinfo: str = ""  # /proc/cpuinfo
    present: str = ""  # /sys/devices/system/cpu/present, e.g. "0-7"
    cpufreq: str = ""  # "PATH VALUE" lines of every core's cpuinfo_max_freq (hot-plugged cores too)


_CPU_DIR = "/sys/devices/system/cpu"


def identity_script(framer: framing.Framer, with_cpu: bool = True) -> str:
    """Give the one shell script that prints getprop, /proc/cpuinfo, every core's cpuinfo_max_freq
    and the present cores as framed sections (two forks: getprop and cat)."""
    parts = [framer.command("getprop", "getprop")]
    if with_cpu:
        parts += [
            framer.command("cpuinfo", "cat /proc/cpuinfo"),
            framer.command("cpufreq", f"for f in {_CPU_DIR}/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do v=; "
                                      '[ -r "$f" ] && read -r v < "$f" && echo "$f $v"; done'),
            framer.command("present", f"read -r v < {_CPU_DIR}/present && echo \"$v\""),
        ]
    return "; ".join([*parts, framer.end()])


def parse_identity(data: bytes, nonce: str) -> Identity:
    """Give the Identity of identity_script's stream (pure)."""
    frames = framing.parse_frames(data, nonce)
    return Identity(identify.parse_getprop(frames.text("getprop")), frames.text("cpuinfo"), frames.text("present"),
                    frames.text("cpufreq"))


def read_identity(phone: Phone, with_cpu: bool = True) -> Identity:
    """Give a phone's properties and CPU texts, read in one device round trip."""
    framer = framing.Framer()
    res = phone.shell_raw(identity_script(framer, with_cpu), timeout=60)
    try:
        found = parse_identity(res.stdout, framer.nonce)
    except KpError as exc:
        raise DeviceError(f"{phone.serial}: identification failed ({exc.message})",
                          "check `adb shell getprop` on that phone") from exc
    if not found.props:
        raise DeviceError(f"{phone.serial}: getprop printed no properties",
                          "check `adb shell getprop` on that phone")
    return found


def _to_int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def port_is_open(host: str, port: int) -> bool:
    """Tell whether something listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


_SYNC_DATA_MAX = 64 * 1024  # the most one sync DATA packet may carry (adb's SYNC_DATA_MAX)


def _send_data(conn: socket.socket, fh: io.BufferedIOBase) -> None:
    """Send a file as sync DATA packets: each read straight into one buffer behind its header, so
    no chunk is copied or allocated again (the client's CPU is the push's, on a 2-core host)."""
    buf = bytearray(8 + _SYNC_DATA_MAX)
    view = memoryview(buf)
    buf[:4] = b"DATA"
    while n := fh.readinto(view[8:]):
        struct.pack_into("<I", buf, 4, n)
        conn.sendall(view[: 8 + n])
