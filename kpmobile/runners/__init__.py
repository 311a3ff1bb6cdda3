"""Runners and their logs: parsers for benchmark_bin-style output, kpmobile's host runner, ELF checks.

``lite_runner.py`` is a standalone script (stdlib + numpy + paddlelite); importing it here costs
nothing, it imports numpy and paddlelite only when it runs a benchmark.
"""

from __future__ import annotations

from pathlib import Path

from kpmobile.runners.elf import check_runner_abi, elf_machine
from kpmobile.runners.lite_runner import RUNNER_VERSION
from kpmobile.runners.parsers import FORMATS, detect_format, parse_file, parse_log, parse_log_report

LITE_RUNNER_PATH = Path(__file__).with_name("lite_runner.py")


def lite_runner_script(python: str) -> str:
    """Give lite_runner.py's source with a `#!<python>` line first, ready to push and execute."""
    return f"#!{python}\n" + LITE_RUNNER_PATH.read_text(encoding="utf-8")


__all__ = [
    "FORMATS",
    "LITE_RUNNER_PATH",
    "RUNNER_VERSION",
    "check_runner_abi",
    "detect_format",
    "elf_machine",
    "lite_runner_script",
    "parse_file",
    "parse_log",
    "parse_log_report",
]
