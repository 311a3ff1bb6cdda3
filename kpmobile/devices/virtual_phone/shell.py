"""Shell services of the virtual phone: `shell,v2,...:`, `shell:` and `exec:` run with /bin/sh in the sandbox."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
from typing import IO, TYPE_CHECKING

from kpmobile.devices.virtual_phone import faults, pacing
from kpmobile.devices.virtual_phone import protocol as p

if TYPE_CHECKING:
    from kpmobile.devices.virtual_phone.server import Stream, VirtualPhone

_READ_SIZE = 64 * 1024
_POLL_S = 0.05


def kill_group(proc: subprocess.Popen[bytes], grace: float = 1.0) -> None:
    """Give nothing: SIGTERM the command's process group, and SIGKILL what is left after `grace` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlive the leader too
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def exit_status(returncode: int) -> int:
    """Give the one-byte exit status a shell reports: 128+N for a command killed by signal N."""
    return (128 - returncode if returncode < 0 else returncode) & 0xFF


def run_shell(stream: Stream, phone: VirtualPhone, command: str, mode: str) -> None:
    """Give nothing: run `command` for a shell stream; `mode` is "v2" (framed), "v1" (mixed) or "exec"."""
    sandbox = phone.sandbox
    rewritten = faults.wrap_runner(sandbox.root, sandbox.rewrite_command(command))
    argv = ["/bin/sh", "-c", rewritten] if command.strip() else ["/bin/sh"]
    stderr = subprocess.PIPE if mode == "v2" else (subprocess.STDOUT if mode == "v1" else subprocess.DEVNULL)
    try:
        env = pacing.shell_env(sandbox.shell_env(), sandbox.root)  # the test-only --slowdown
        proc = subprocess.Popen(argv, cwd=sandbox.root, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, start_new_session=True, bufsize=0)
    except OSError as exc:
        message = f"/system/bin/sh: {exc}\n".encode()
        if mode == "v2":
            stream.write(p.shell_packet(p.SHELL_STDERR, message) + p.shell_packet(p.SHELL_EXIT, b"\x7f"))
        else:
            stream.write(message)
        return
    phone.track(proc, alive=True)
    pacing.prioritise(proc.pid, sandbox.root)  # the test-only --nice
    try:
        fed = threading.Event()
        feeder = threading.Thread(target=_forward_stdin, args=(stream, proc.stdin, mode == "v2", fed),
                                  daemon=True, name=f"stdin-{proc.pid}")
        feeder.start()
        finished = _pump_output(stream, proc, mode == "v2")
        if not finished:
            # The host closed the stream. What it sent before closing still reaches the command
            # (`adb exec-in` ends that way), then the command's whole process group dies.
            feeder.join(timeout=5)
            if fed.is_set():
                try:
                    proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
            kill_group(proc)
        returncode = proc.wait()
        if finished and mode == "v2":
            stream.write(p.shell_packet(p.SHELL_EXIT, bytes([exit_status(returncode)])))
    finally:
        if proc.poll() is None:
            kill_group(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        phone.track(proc, alive=False)


def _pump_output(stream: Stream, proc: subprocess.Popen[bytes], framed: bool) -> bool:
    """Give True once the command ended and its output went out; False when the host closed first."""
    selector = selectors.DefaultSelector()
    for pipe, packet_id in ((proc.stdout, p.SHELL_STDOUT), (proc.stderr, p.SHELL_STDERR)):
        if pipe is not None:
            os.set_blocking(pipe.fileno(), False)
            selector.register(pipe, selectors.EVENT_READ, packet_id)
    try:
        exited = False
        while selector.get_map():
            if stream.closed:
                return False
            # After the command exits, what it wrote is already in the pipes: drain without
            # waiting for background children that may hold the pipes open.
            events = selector.select(timeout=0 if exited else _POLL_S)
            if not events and exited:
                break
            for key, _ in events:
                try:
                    data = os.read(key.fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                out = p.shell_packet(key.data, data) if framed else data
                if not stream.write(out):
                    return False
            exited = exited or proc.poll() is not None
    finally:
        selector.close()
    # The command closed its output but may still run: wait for it, or for the host to give up. Its
    # pipes close a moment before its exit can be reaped, so this wait is on the process itself
    # (Popen.wait polls from half a millisecond up), never a fixed poll interval after every command.
    while not stream.closed:
        try:
            proc.wait(timeout=_POLL_S)
            return not stream.closed
        except subprocess.TimeoutExpired:
            continue
    return False


def kill_leftovers(root: str) -> int:
    """Give how many stray processes were killed: those whose environment names this sandbox root.

    Commands may leave background children that outlive their shell; they all carry
    KPMOBILE_VIRTUAL_ROOT=root, which tells them apart from every other process.
    """
    marker = f"\0KPMOBILE_VIRTUAL_ROOT={root}\0".encode()
    killed = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = b"\0" + fh.read() + b"\0"
        except OSError:
            continue
        if marker in environ:
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


class _StdinPipe:
    """The command's stdin pipe: written to until closed; a broken pipe closes it."""

    def __init__(self, pipe: IO[bytes] | None, fed: threading.Event) -> None:
        self.pipe = pipe
        self.fed = fed

    def write(self, data: bytes) -> None:
        """Give nothing: write all of `data` (nothing once closed)."""
        if self.pipe is None or not data:
            return
        self.fed.set()
        try:
            view = memoryview(data)
            while view:
                written = self.pipe.write(view)
                view = view[written or 0:]
        except (BrokenPipeError, OSError, ValueError):
            self.close()

    def close(self) -> None:
        """Give nothing: close the pipe once."""
        if self.pipe is not None:
            try:
                self.pipe.close()
            except OSError:
                pass
            self.pipe = None


def _forward_stdin(stream: Stream, pipe: IO[bytes] | None, framed: bool, fed: threading.Event) -> None:
    """Give nothing: copy the host's stdin to the command until the stream ends or stdin is closed."""
    stdin = _StdinPipe(pipe, fed)
    write, close = stdin.write, stdin.close

    try:
        while True:
            if not framed:
                chunk = stream.read_some()
                if chunk is None:
                    return
                write(chunk)
                continue
            head = stream.read_exact(p.SHELL_PACKET.size)
            if head is None:
                return
            packet_id, length = p.SHELL_PACKET.unpack(head)
            data = stream.read_exact(length) if length else b""
            if data is None:
                return
            if packet_id == p.SHELL_STDIN:
                write(data)
            elif packet_id == p.SHELL_CLOSE_STDIN:
                close()
            # SHELL_WINDOW: there is no terminal to resize
    finally:
        close()
