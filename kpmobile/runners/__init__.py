"""Runners and their logs: parsers for benchmark_bin-style output, kpmobile's host runner, ELF checks.

``lite_runner.py`` and ``pipeline_runner.py`` are scripts (stdlib + numpy + paddlelite, plus the
stdlib-only ``nbfile`` and ``runner_common``); importing them here costs nothing, they import numpy
and paddlelite only when they run. ``executable_runner`` writes the file that is pushed: the
runner with the shared modules spliced in (``splice``) and a ``#!<python>`` line first.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from kpmobile.filememo import identity_of, remembered_as
from kpmobile.runners.elf import check_runner_abi, elf_machine
from kpmobile.runners.lite_runner import RUNNER_VERSION
from kpmobile.runners.parsers import FORMATS, detect_format, parse_file, parse_log, parse_log_report
from kpmobile.runners.splice import spliced_files, standalone_source

LITE_RUNNER_PATH = Path(__file__).with_name("lite_runner.py")


def executable_runner(source: Path, name: str, folder: Path, python: str) -> Path:
    """Give `folder/<content hash>/name`: the runner `source` as one self-contained file (shared modules
    spliced in) with a `#!<python>` line first, executable.

    The folder is named by the file's content, so two kpmobile versions (or checkouts) sharing one cache
    never swap their runners under each other's sweeps, and each writes through its own temporary file.
    """
    # The splice parses the runner and its shared modules (~30 ms of every sweep's start): remembered
    # while none of those files changes.
    spliced = remembered_as(f"spliced-runner:{os.path.abspath(source)}", lambda: identity_of(spliced_files(source)),
                            lambda: standalone_source(source))
    text = f"#!{python}\n" + spliced
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    path = folder / digest / name
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(path)  # atomic: a concurrent sweep never sees half a runner
    return path


__all__ = [
    "FORMATS",
    "LITE_RUNNER_PATH",
    "RUNNER_VERSION",
    "check_runner_abi",
    "detect_format",
    "elf_machine",
    "executable_runner",
    "parse_file",
    "parse_log",
    "parse_log_report",
]
