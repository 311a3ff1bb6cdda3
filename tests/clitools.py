"""Running the real kpmobile CLI from tests."""

from __future__ import annotations

import os
import subprocess
import sys

FAST = ["--warmup", "1", "--repeats", "3"]


def kpmobile(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `python -m kpmobile ARGS` in a subprocess and give what it printed."""
    return subprocess.run([sys.executable, "-m", "kpmobile", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "250", **(env or {})})
