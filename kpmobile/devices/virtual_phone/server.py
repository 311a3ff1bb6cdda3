"""The virtual phone's adb transport: TCP connections, streams with flow control, and `serve()`."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from kpmobile.config import BATTERY_VENDORS, Physics, Profile, load_profile
from kpmobile.devices.virtual_phone import faults
from kpmobile.devices.virtual_phone import protocol as p
from kpmobile.devices.virtual_phone.emulation import Emulation, is_arm_abi, prepare_emulation
from kpmobile.devices.virtual_phone.link import Link, link_spec
from kpmobile.devices.virtual_phone.physics import STATUSES, PhysicsLoop, SessionSource
from kpmobile.devices.virtual_phone.sandbox import Sandbox
from kpmobile.errors import ConfigError, DeviceError
from kpmobile.paths import cache_dir
from kpmobile.records import CpuCluster

log = logging.getLogger("kpmobile.virtual_phone")

AUTH_MODES = ("none", "accept", "deny")
FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")
ALLOWED_HOST = "127.0.0.1"


class Stream:
    """One OPENed service: device->host writes wait for the host's OKAY; host->device data is OKAYed as read."""

    def __init__(self, conn: Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.closed = False
        self._ready = True  # the device may send one WRTE right after its OKAY to the OPEN
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    # called by the connection's reader thread ------------------------------------------
    def deliver(self, data: bytes) -> None:
        """Queue a WRTE payload from the host."""
        self._inbox.put(data)

    def host_okay(self) -> None:
        """Let the next WRTE go: the host acknowledged the last one."""
        with self._cond:
            self._ready = True
            self._cond.notify_all()

    def wait_closed(self, timeout: float) -> bool:
        """Give True once the stream is closed, waiting at most `timeout` seconds."""
        with self._cond:
            if not self.closed:
                self._cond.wait(timeout)
            return self.closed

    def host_closed(self) -> None:
        """Mark the stream closed by the host (or by a lost connection); no CLSE goes back."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._inbox.put(None)

    # called by the service thread -------------------------------------------------------
    def _pull(self) -> bool:
        if self._eof:
            return False
        data = self._inbox.get()
        if data is None:
            self._eof = True
            return False
        if not self.closed:
            self.conn.send(p.A_OKAY, self.local_id, self.remote_id)
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        return True

    def read_some(self) -> bytes | None:
        """Give whatever the host sent next (buffered bytes first), or None once the host closed."""
        if self._pos == len(self._buf) and not self._pull():
            return None
        out = bytes(self._buf[self._pos:])
        self._pos = len(self._buf)
        return out

    def read_exact(self, size: int) -> bytes | None:
        """Give exactly `size` bytes from the host, or None if the stream ends first."""
        while len(self._buf) - self._pos < size:
            if not self._pull():
                return None
        start = self._pos
        self._pos += size
        with memoryview(self._buf) as view:
            return bytes(view[start:start + size])

    def read_into(self, size: int, sink: Callable[[memoryview], object]) -> bool:
        """Give True once `size` bytes from the host were handed to `sink` (without copying them)."""
        while size:
            if self._pos == len(self._buf) and not self._pull():
                return False
            take = min(size, len(self._buf) - self._pos)
            with memoryview(self._buf) as view, view[self._pos:self._pos + take] as chunk:
                sink(chunk)
            self._pos += take
            size -= take
        return True

    def write(self, data: bytes) -> bool:
        """Give True once `data` went out in WRTEs of at most max payload, each after the last one's OKAY."""
        step = self.conn.max_payload
        with self._write_lock, memoryview(data) as view:
            for start in range(0, len(data), step):
                with self._cond:
                    while not self._ready and not self.closed:
                        self._cond.wait()
                    if self.closed:
                        return False
                    self._ready = False
                chunk = view[start:start + step]
                self.conn.phone.link.carry(len(chunk))
                if not self.conn.send(p.A_WRTE, self.local_id, self.remote_id, chunk):
                    return False
        return True

    def close(self) -> None:
        """Close the stream from the device side (CLSE), unless the host closed it already."""
        with self._cond:
            was_closed, self.closed = self.closed, True
            self._cond.notify_all()
        self.conn.forget(self.local_id)
        self._inbox.put(None)  # wakes a stdin forwarder still waiting for the host
        if not was_closed:
            self.conn.send(p.A_CLSE, self.local_id, self.remote_id)


class Connection:
    """One TCP connection from an adb server: the CNXN/AUTH handshake and the streams opened on it."""

    def __init__(self, sock: socket.socket, phone: VirtualPhone) -> None:
        self.sock = sock
        self.phone = phone
        self.max_payload = p.MAX_PAYLOAD
        self.online = False
        self._checksums = False
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1
        self._dead = False

    def send(self, command: int, arg0: int, arg1: int, payload: bytes | memoryview = b"") -> bool:
        """Give True when the message was sent; False once the connection is gone."""
        check = p.checksum(payload) if self._checksums else 0
        header = p.pack_header(command, arg0, arg1, len(payload), check)
        try:
            with self._send_lock:
                if len(payload) <= 65536:
                    self.sock.sendall(header + bytes(payload))
                else:
                    self.sock.sendall(header)
                    self.sock.sendall(payload)
            return True
        except OSError:
            self.shutdown()
            return False

    def forget(self, local_id: int) -> None:
        """Drop a stream from the table."""
        with self._streams_lock:
            self._streams.pop(local_id, None)

    def shutdown(self) -> None:
        """Cut the TCP connection; the reader thread then closes every stream."""
        self._dead = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self) -> None:
        """Serve the connection until the host hangs up or the phone drops it."""
        reader = self.sock.makefile("rb", buffering=256 * 1024)
        try:
            while not self._dead:
                msg = p.read_message(reader)
                if msg is None:
                    break
                self._handle(msg)
        except (OSError, p.ProtocolError) as exc:
            if not self._dead:
                log.info("connection ended: %s", exc)
        finally:
            with self._streams_lock:
                streams, self._streams = list(self._streams.values()), {}
            for stream in streams:
                stream.host_closed()
            reader.close()
            self.sock.close()
            self.phone.connection_ended(self)

    def _handle(self, msg: p.Message) -> None:
        if msg.command == p.A_CNXN:
            self._connect(msg)
        elif msg.command == p.A_AUTH:
            if self.phone.auth == "accept" and msg.arg0 in (p.AUTH_SIGNATURE, p.AUTH_RSAPUBLICKEY):
                self._go_online()
            elif msg.arg0 == p.AUTH_SIGNATURE:  # deny: ask again, as a phone does for unknown keys
                self.send(p.A_AUTH, p.AUTH_TOKEN, 0, os.urandom(20))
            # deny + public key: the phone "waits for the user" forever
        elif msg.command == p.A_OPEN:
            self._open(msg.arg0, msg.payload.rstrip(b"\0").decode("utf-8", "replace"))
        elif msg.command in (p.A_OKAY, p.A_WRTE, p.A_CLSE):
            self._to_stream(msg)
        else:
            log.info("ignoring %s", msg.name)

    def _connect(self, msg: p.Message) -> None:
        """Answer the host's CNXN: online, or an AUTH token, or (offline) nothing."""
        if self.phone.offline:
            return  # never answered: the adb server lists the phone as offline
        self.max_payload = max(4096, min(msg.arg1, p.MAX_PAYLOAD))
        self._checksums = msg.arg0 < p.VERSION
        if self.phone.auth == "none":
            self._go_online()
        else:
            self.send(p.A_AUTH, p.AUTH_TOKEN, 0, os.urandom(20))

    def _to_stream(self, msg: p.Message) -> None:
        """Hand an OKAY, WRTE or CLSE to its stream (a CLSE also forgets the stream)."""
        with self._streams_lock:
            stream = self._streams.get(msg.arg1)
            if stream is not None and msg.command == p.A_CLSE:
                del self._streams[msg.arg1]
        if stream is None:
            return
        if msg.command == p.A_OKAY:
            stream.host_okay()
        elif msg.command == p.A_WRTE:
            self.phone.link.carry(len(msg.payload))
            stream.deliver(msg.payload)
        else:
            stream.host_closed()

    def _go_online(self) -> None:
        self.online = True
        self.send(p.A_CNXN, p.VERSION, p.MAX_PAYLOAD, p.banner(self.phone.sandbox.props, FEATURES))

    def _open(self, remote_id: int, service: str) -> None:
        if not self.online:
            return
        handler = self.phone.service_for(service)
        if handler is None:
            log.info("refusing service %r", service)
            self.send(p.A_CLSE, 0, remote_id)
            return
        if not self.phone.count_service():
            log.info("disconnect-after reached at %r: dropping the device", service)
            self.phone.drop()
            return
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            stream = Stream(self, local_id, remote_id)
            self._streams[local_id] = stream
        log.info("stream %d: %s", local_id, service)
        self.phone.link.round_trip()
        self.send(p.A_OKAY, local_id, remote_id)
        threading.Thread(target=_run_service, args=(handler, stream), daemon=True,
                         name=f"service-{local_id}").start()


def _run_service(handler: Callable[[Stream], None], stream: Stream) -> None:
    try:
        handler(stream)
    except Exception:  # a bug in one service must not take the phone down
        log.exception("service failed")
    finally:
        stream.close()


class VirtualPhone:
    """A phone's state shared by its connections: sandbox, auth mode, fault switches, live processes."""

    def __init__(self, sandbox: Sandbox, auth: str = "none", disconnect_after: int | None = None,
                 quota: int | None = None, offline: bool = False, link: Link | None = None) -> None:
        self.sandbox = sandbox
        self.link = link or Link(link_spec("loopback"))
        self.offline = offline
        self.auth = auth
        self.disconnect_after = disconnect_after
        self.quota = quota
        self.stopping = threading.Event()
        self._opened = 0
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self.sessions = SessionSource()

    def service_for(self, service: str) -> Callable[[Stream], None] | None:
        """Give the handler of an OPEN's service name, or None for services the phone lacks."""
        from kpmobile.devices.virtual_phone import shell, sync

        kind, _, rest = service.partition(":")
        options = kind.split(",")
        if options[0] == "shell":
            mode = "v2" if "v2" in options[1:] else "v1"
            return lambda stream: shell.run_shell(stream, self, rest, mode)
        if kind == "exec":
            return lambda stream: shell.run_shell(stream, self, rest, "exec")
        if kind == "sync":
            return lambda stream: sync.run_sync(stream, self)
        return None

    def count_service(self) -> bool:
        """Give False once more shell/sync services were opened than --disconnect-after allows."""
        if faults.drop_requested(self.sandbox.root):
            return False
        with self._lock:
            self._opened += 1
            return self.disconnect_after is None or self._opened <= self.disconnect_after

    def track(self, proc: subprocess.Popen[bytes], alive: bool) -> None:
        """Remember (or forget) a shell process, so that stopping the phone kills it (and physics sees its CPU)."""
        with self._lock:
            if alive:
                self._processes.add(proc)
                self.sessions.add(proc.pid)
            else:
                self._processes.discard(proc)
                self.sessions.discard(proc.pid)

    def connection_ended(self, conn: Connection) -> None:
        """Forget a finished connection."""
        with self._lock:
            self._connections.discard(conn)

    def drop(self) -> None:
        """Stop accepting and cut every connection, as a phone that vanished from the network."""
        self.stopping.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.shutdown()

    def kill_processes(self) -> None:
        """Kill every shell command still running, and their stray background children."""
        from kpmobile.devices.virtual_phone.shell import kill_group, kill_leftovers

        with self._lock:
            processes = list(self._processes)
        for proc in processes:
            kill_group(proc, grace=0.2)
        kill_leftovers(str(self.sandbox.root))

    def serve_forever(self, listener: socket.socket) -> None:
        """Accept connections, one thread each, until `drop()` or an interrupt."""
        listener.settimeout(0.25)
        while not self.stopping.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, self)
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=conn.run, daemon=True, name="adb-connection").start()


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _start_physics(sandbox: Sandbox, spec: Profile, phone: VirtualPhone, battery: str | None,
                   status: str) -> PhysicsLoop | None:
    """Start the physical model when the profile has one or a battery is asked for; None otherwise."""
    if battery is not None and battery not in BATTERY_VENDORS:
        raise ConfigError(f"unknown battery vendor '{battery}'", f"use one of: {', '.join(BATTERY_VENDORS)}")
    if status not in STATUSES:
        raise ConfigError(f"unknown battery status '{status}'", f"use one of: {', '.join(STATUSES)}")
    if spec.physics is None and battery in (None, "none"):
        return None
    phys = spec.physics or Physics(trip_c=1000.0)  # a battery alone: no heat worth throttling for
    clusters = spec.clusters or (CpuCluster(tuple(range(min(os.cpu_count() or 2, 8))), "x86_64", 2000000),)
    loop = PhysicsLoop(sandbox.root, phys, clusters, spec.big_cores, phone.sessions, battery, status)
    loop.start()
    return loop


def _emulation_for(abi: str) -> Emulation | None:
    """Give how an ARM phone runs aarch64 code here; None for x86 phones, or (with a warning on
    stderr) where qemu-user or the arm64 libraries are missing: the phone then only reports ARM."""
    if not is_arm_abi(abi):
        return None
    try:
        return prepare_emulation(cache_dir() / "virtual-phone" / "exec-shim")
    except ConfigError as exc:
        print(f"warning: {exc.one_line()}", file=sys.stderr, flush=True)
        return None


def _pin(cpus: str) -> None:
    """Give nothing: keep this phone (this thread, and all it starts) on the host CPUs `cpus`."""
    from kpmobile.devices.virtual_phone import pacing

    try:
        pacing.pin(pacing.parse_cpus(cpus))
    except ValueError as exc:
        what, todo = exc.args
        raise ConfigError(f"--cpus: {what}", todo) from exc


def _set_slowdown(sandbox: Sandbox, pct: float, nice: int) -> None:
    from kpmobile.devices.virtual_phone import pacing

    if not 0 <= pct <= 1000:
        raise ConfigError(f"--slowdown {pct:g} is out of range", "give a percentage from 0 to 1000")
    if not -20 <= nice <= 19:
        raise ConfigError(f"--nice {nice} is out of range", "give a nice value from -20 to 19")
    if pct > 0 or pacing.control_file(sandbox.root).exists():
        pacing.set_slowdown(sandbox.root, pct, sandbox.props_file)
    if nice != 0 or pacing.nice_file(sandbox.root).exists():
        pacing.set_nice(sandbox.root, nice)


def serve(port: int, profile: str = "virtual", getprop: Path | None = None, auth: str = "none",
          root: Path | None = None, cpuinfo: Path | None = None, host: str = "127.0.0.1",
          disconnect_after: int | None = None, quota: int | None = None, abi: str = "x86_64",
          runner_fault: str = "none", offline: bool = False, cpufreq: str | None = None,
          link: str = "loopback", slowdown: float = 0.0, nice: int = 0, battery: str | None = None,
          battery_status: str = "Discharging", cpus: str | None = None) -> None:
    """Give nothing: serve a virtual phone on host:port until interrupted or dropped (blocking)."""
    if cpus is not None:
        _pin(cpus)
    if host != ALLOWED_HOST:
        raise ConfigError(f"the virtual phone listens on {ALLOWED_HOST} only, not '{host}'",
                          "drop --host, or give --host 127.0.0.1")
    if auth not in AUTH_MODES:
        raise ConfigError(f"unknown auth mode '{auth}'", f"use one of: {', '.join(AUTH_MODES)}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range", "give a port between 1 and 65535")
    spec = load_profile(profile)
    wire = Link(link_spec(link))
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="kpmobile-vphone-")) if root is None else root
    try:
        sandbox = Sandbox(root)
        emulation = _emulation_for(abi)
        sandbox.prepare(spec, getprop, cpuinfo, abi=abi, cpufreq=cpufreq, emulation=emulation)
        if runner_fault != "none" or faults.control_file(sandbox.root).exists():
            faults.set_runner_fault(sandbox.root, runner_fault)
        _set_slowdown(sandbox, slowdown, nice)
        try:
            listener = socket.create_server((host, port))
        except OSError as exc:
            raise DeviceError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                              "pick another --port") from exc
        phone = VirtualPhone(sandbox, auth, disconnect_after, quota, offline, wire)
        physics = _start_physics(sandbox, spec, phone, battery, battery_status)
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_exit) if in_main else None
        try:
            with listener:
                bound = listener.getsockname()[1]
                runs = f" abi={abi} runs={emulation.qemu_aarch64}" if emulation is not None else f" abi={abi}"
                print(f"virtual phone listening on {host}:{bound} profile={spec.name} auth={auth} "
                      f"root={sandbox.root} link={link}{runs}", flush=True)
                phone.serve_forever(listener)
        except KeyboardInterrupt:
            pass
        finally:
            if in_main:  # a second SIGTERM must not cut the cleanup short
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            phone.drop()
            phone.kill_processes()
            if physics is not None:
                physics.stop()
            if in_main:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
