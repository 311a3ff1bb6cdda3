"""One device shell call, many answers: sections of one stream, delimited by a per-call nonce.

A device script prints each answer as a section, and a last line that says the stream is whole::

    =KP1 NONCE NAME\\n        (or "=KP1 NONCE NAME -\\n": the file was not there, no body)
    body bytes\\n
    =KP1 NONCE NAME2\\n
    ...
    =KP1 NONCE end\\n

NONCE is 16 random hex digits chosen by the host for that one call, so a body (a log, a getprop
dump) cannot end a section by accident. A body ends at the newline before the next line starting
"=KP1 NONCE "; the script prints that newline itself, so bodies come back byte for byte. Sections
are delimited rather than length-prefixed because a length costs a `wc -c` fork per section on the
phone, and the per-case script runs next to every measurement. Names are words chosen by kpmobile,
never data. Parsing is pure and tested on what the real scripts print under /bin/sh.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from kpmobile.errors import ParseError

MAGIC = "=KP1"
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_NONCE = re.compile(r"[0-9a-f]{16}")


def new_nonce() -> str:
    """Give a fresh nonce for one device call: 8 bytes from the OS's CSPRNG, as `secrets.token_hex`
    gives them, without importing `secrets` (and `hmac`) into every command's start-up."""
    return os.urandom(8).hex()


def check_name(name: str) -> str:
    """Give `name` when it is a valid section name; ValueError otherwise (names are code, not data)."""
    if not _NAME.fullmatch(name) or name == "end":
        raise ValueError(f"bad section name {name!r}")
    return name


@dataclass(frozen=True)
class Framer:
    """Writes the shell snippets of one framed call (all with the same nonce)."""

    nonce: str = field(default_factory=new_nonce)

    def __post_init__(self) -> None:
        if not _NONCE.fullmatch(self.nonce):
            raise ValueError(f"bad nonce {self.nonce!r}")

    def header(self, name: str) -> str:
        """Give the shell command printing section `name`'s header line."""
        return f"echo '{MAGIC} {self.nonce} {check_name(name)}'"

    def command(self, name: str, command: str) -> str:
        """Give a snippet printing `command`'s stdout as section `name` (its stderr is dropped)."""
        return f"{self.header(name)}; {{ {command}; }} 2>/dev/null; echo"

    def file(self, name: str, word: str) -> str:
        """Give a snippet printing a file as section `name`, or the missing mark when it is absent.
        `word` is the file as one shell word: a path through shlex.quote, or a "$variable"."""
        return (f"if [ -f {word} ]; then {self.header(name)}; cat {word} 2>/dev/null; echo; "
                f"else echo '{MAGIC} {self.nonce} {name} -'; fi")

    def files_at_once(self, first: str, items: Sequence[tuple[str, str]], scratch: str) -> str:
        """Give a snippet printing the file `first` (sections already framed), then each (name, word)
        file as a section and the end line, all through ONE `cat` (one fork, few writes).

        `first`, `scratch` and the words are shell words (paths through shlex.quote); the header
        lines go to the files `scratch`.0, `scratch`.1, ..., which the caller removes."""
        parts = [f"set -- {first}"]
        for i, (name, word) in enumerate(items):
            head = f"{scratch}.{i}"
            lead = "\\n" if i else ""  # the separator after the previous file's body
            parts.append(f"if [ -f {word} ]; then printf '{lead}{MAGIC} {self.nonce} {check_name(name)}\\n' > {head}; "
                         f'set -- "$@" {head} {word}; else printf \'{lead}{MAGIC} {self.nonce} {name} -\\n\' > {head}; '
                         f'set -- "$@" {head}; fi')
        tail = f"{scratch}.{len(items)}"
        parts.append(f"printf '\\n{MAGIC} {self.nonce} end\\n' > {tail}; set -- \"$@\" {tail}; cat \"$@\"")
        return "; ".join(parts)

    def end(self) -> str:
        """Give the command printing the last line, which says the stream is whole."""
        return f"echo '{MAGIC} {self.nonce} end'"


@dataclass(frozen=True)
class Frames:
    """The sections of one framed stream, by name (a missing file's section maps to None)."""

    sections: dict[str, bytes | None]
    complete: bool = True  # the end line came: nothing was cut off
    before: bytes = b""  # what the device printed before the first section (kept for the raw log)

    def text(self, name: str, default: str = "") -> str:
        """Give a section as text (UTF-8, bad bytes replaced), or `default` when absent or missing."""
        body = self.sections.get(name)
        return default if body is None else body.decode("utf-8", "replace")

    def present(self, name: str) -> bool:
        """Tell whether the section came with a body (its file existed)."""
        return self.sections.get(name) is not None


@functools.lru_cache(maxsize=1)
def _head_pattern() -> re.Pattern[bytes]:
    """Give the pattern of a section's header line, for any nonce: compiled once, not per stream
    (a pattern holding the nonce was compiled again for every case, ~0.7 ms each)."""
    return re.compile(re.escape(MAGIC.encode()) + rb" (\S+) ([a-z][a-z0-9_.-]{0,63})( -)?\n")


def parse_frames(data: bytes, nonce: str) -> Frames:
    """Give the sections of a framed stream; ParseError when it holds none."""
    mine = nonce.encode()
    heads = [m for m in _head_pattern().finditer(data)
             if m.group(1) == mine and (m.start() == 0 or data[m.start() - 1:m.start()] == b"\n")]
    if not heads:
        raise ParseError(f"device stream holds no section ({len(data)} bytes: {data[:60]!r})",
                         "the phone's shell printed something else; see the stored raw log")
    sections: dict[str, bytes | None] = {}
    complete = False
    for i, head in enumerate(heads):
        name = head.group(2).decode()
        if name == "end":
            complete = True
            break
        if head.group(3):
            sections[name] = None
            continue
        stop = heads[i + 1].start() if i + 1 < len(heads) else len(data)
        body = data[head.end():stop]
        sections[name] = body[:-1] if i + 1 < len(heads) and body.endswith(b"\n") else body
    return Frames(sections, complete, data[:heads[0].start()])
