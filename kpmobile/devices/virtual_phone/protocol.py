"""The adb wire format on the device side: 24-byte message headers, sync ids and shell_v2 packets."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

HEADER = struct.Struct("<6I")
VERSION = 0x01000001  # the version from which checksums may be skipped
MAX_PAYLOAD = 1024 * 1024


def command_id(name: str) -> int:
    """Give the u32 a 4-letter command or sync id is sent as."""
    return int.from_bytes(name.encode("ascii"), "little")


A_CNXN = command_id("CNXN")
A_AUTH = command_id("AUTH")
A_OPEN = command_id("OPEN")
A_OKAY = command_id("OKAY")
A_WRTE = command_id("WRTE")
A_CLSE = command_id("CLSE")
A_STLS = command_id("STLS")

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3

# shell_v2 packet ids (shell_protocol.h)
SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_WINDOW = 5
SHELL_PACKET = struct.Struct("<BI")

# sync request and reply ids (SYNC.TXT, file_sync_protocol.h)
SYNC_DATA_MAX = 64 * 1024
SYNC_REQUEST = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4s3I")  # id, mode, size, mtime
DENT_V1 = struct.Struct("<4s4I")  # id, mode, size, mtime, namelen
# id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # the same, then namelen


class Readable(Protocol):
    """Anything with `read(n)` giving n bytes, or fewer only at the end of the stream."""

    def read(self, size: int, /) -> bytes: ...


class ProtocolError(Exception):
    """The host sent something that is not an adb message."""


@dataclass(frozen=True)
class Message:
    """One adb message: a command, two arguments and a payload."""

    command: int
    arg0: int
    arg1: int
    payload: bytes = b""

    @property
    def name(self) -> str:
        """Give the command as its 4 letters (or hex when unknown)."""
        raw = self.command.to_bytes(4, "little")
        return raw.decode("ascii") if raw.isalpha() else f"0x{self.command:08x}"


def checksum(payload: bytes | memoryview) -> int:
    """Give the byte-sum checksum that hosts older than VERSION check."""
    return sum(payload) & 0xFFFFFFFF


def pack_header(command: int, arg0: int, arg1: int, length: int, check: int = 0) -> bytes:
    """Give the 24-byte header of a message whose payload is `length` bytes."""
    return HEADER.pack(command, arg0, arg1, length, check, command ^ 0xFFFFFFFF)


def read_message(stream: Readable, max_payload: int = MAX_PAYLOAD) -> Message | None:
    """Give the next message read from `stream`, or None at a clean end of stream."""
    head = stream.read(HEADER.size)
    if not head:
        return None
    if len(head) != HEADER.size:
        raise ProtocolError("connection closed inside a message header")
    command, arg0, arg1, length, _check, magic = HEADER.unpack(head)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic 0x{magic:08x} for command 0x{command:08x}")
    if length > max(max_payload, MAX_PAYLOAD):
        raise ProtocolError(f"payload of {length} bytes exceeds the maximum")
    payload = stream.read(length) if length else b""
    if len(payload) != length:
        raise ProtocolError("connection closed inside a message payload")
    return Message(command, arg0, arg1, payload)


def shell_packet(packet_id: int, data: bytes) -> bytes:
    """Give one shell_v2 packet: the id byte, the u32 length and the data."""
    return SHELL_PACKET.pack(packet_id, len(data)) + data


def sync_fail(message: str) -> bytes:
    """Give a sync FAIL reply carrying `message`."""
    text = message.encode("utf-8", "replace")
    return SYNC_REQUEST.pack(b"FAIL", len(text)) + text


def banner(props: dict[str, str], features: tuple[str, ...]) -> bytes:
    """Give the CNXN banner of a device with these properties and features."""

    def clean(value: str) -> str:
        return value.replace(";", "_").replace("\n", " ")

    name = props.get("ro.product.name") or props.get("ro.product.device") or "virtual"
    model = props.get("ro.product.model") or "Virtual Phone"
    device = props.get("ro.product.device") or "virtual"
    text = (f"device::ro.product.name={clean(name)};ro.product.model={clean(model)};"
            f"ro.product.device={clean(device)};features={','.join(features)}")
    return text.encode("utf-8")
