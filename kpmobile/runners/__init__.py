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


def executable_runner(source: Path, name: str, folder: Path, python: str) -> Path:
    """Give `folder/name`: the runner `source` with a `#!<python>` line first, executable, rewritten only on change."""
    text = f"#!{python}\n" + source.read_text(encoding="utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_suffix(".tmp")
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
