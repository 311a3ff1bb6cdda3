"""Text from outside (phones, stores, imports) made safe to show: no control characters."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, and C1 controls (0x80-0x9f; 0x9b is a one-byte CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_INLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def strip_controls(text: object, *, inline: bool = False) -> str:
    """Give `text` as a string without control characters (ESC, BEL, CR, ...); `inline` drops tab and newline too."""
    pattern = _CONTROL_INLINE if inline else _CONTROL
    return pattern.sub("", str(text))
