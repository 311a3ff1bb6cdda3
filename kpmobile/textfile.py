"""Text files from outside as people save them: UTF-8 or UTF-16 with a BOM (Windows PowerShell 5
writes `adb shell getprop > f.txt` as UTF-16 LE with CRLF), CRLF line ends; binary files, empty
files and folders are refused with one error line."""

from __future__ import annotations

import codecs
from pathlib import Path

from kpmobile.errors import ConfigError

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_CONTROL_OK = {9, 10, 11, 12, 13, 27}  # tab, newlines, form feed, escape (colour codes)


_MAGIC = (b"\x7fELF", b"PK\x03\x04", b"\x1f\x8b", b"\x89PNG", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf")


def _looks_binary(data: bytes) -> bool:
    """Tell whether bytes with no BOM are not text: an executable or archive, or more than 1 in 10
    bytes NUL or another control byte (a text log with a stray binary tail is still text)."""
    if data.startswith(_MAGIC):
        return True
    sample = data[:65536]
    controls = sum(1 for b in sample if b < 32 and b not in _CONTROL_OK)
    return controls * 10 > len(sample)


def decode_text(data: bytes, what: str) -> str:
    """Give the text of `data` with "\\n" line ends; ConfigError naming `what` when it is empty or binary."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{what} starts with a {encoding} byte-order mark but is not {encoding} text "
                                  f"({exc.reason} at byte {exc.start})", "save it again as UTF-8 or UTF-16") from exc
            break
    else:
        if _looks_binary(data):
            raise ConfigError(f"{what} is a binary file, not text",
                              "give the text file (a saved log, getprop or /proc/cpuinfo dump)")
        text = data.decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ConfigError(f"{what} is empty", "give a file that holds the saved text")
    return text


def read_text(path: Path, what: str | None = None) -> str:
    """Give the text of a file (see decode_text); ConfigError for a missing file or a folder."""
    name = what or str(path)
    if path.is_dir():
        raise ConfigError(f"{name} is a folder, not a file", "give the path of the file inside it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {name} ({exc.strerror or exc})", "give the path of an existing file") from exc
    return decode_text(data, name)
