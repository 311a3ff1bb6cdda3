"""`kpmobile doctor`: what this host has for benchmarking, as a list of checks."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from kpmobile.envcheck import package_version


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str


def run_checks(servers: list[str], runner: Path | None = None) -> list[Check]:
    """Give the doctor's checks: Python, packages, adb binary and servers, devices, runners per ABI."""
    from kpmobile.devices import android
    from kpmobile.devices.adbserver import find_adb, server_alive
    from kpmobile.envcheck import check_numpy
    from kpmobile.errors import KpError

    checks = [Check("python", sys.version_info[:2] == (3, 10), f"{platform.python_version()} at {sys.executable}")]
    for pkg in ("paddlelite", "numpy", "paddlepaddle", "paddle2onnx", "onnxruntime", "adbutils"):
        version = package_version(pkg)
        checks.append(Check(pkg, version is not None, version or "not installed"))
    try:
        check_numpy()
        checks.append(Check("numpy<2 beside paddlelite", True, "ok"))
    except KpError as exc:
        checks.append(Check("numpy<2 beside paddlelite", False, exc.one_line()))
    try:
        checks.append(Check("adb binary", True, find_adb()))
    except KpError as exc:
        checks.append(Check("adb binary", False, exc.one_line()))
    for server in servers or [android.default_server()]:
        host, port = android.parse_server(server)
        alive = server_alive(host, port)
        checks.append(Check(f"adb server {server}", alive, "running" if alive else "not running (started on use)"))
        if not alive:
            continue
        try:
            devices = android.list_devices([server], with_cpu=False)
            text = ", ".join(f"{d.serial} ({d.state}, {d.abi or '?'}, {d.profile or '?'})" for d in devices)
            checks.append(Check(f"devices on {server}", True, text or "none attached"))
        except KpError as exc:
            checks.append(Check(f"devices on {server}", False, exc.one_line()))
    from kpmobile.devices.virtual_phone.emulation import DEBIAN_PACKAGES, missing_parts

    missing = missing_parts()
    checks.append(Check("ARM virtual phone (qemu-aarch64)", not missing,
                        "ready: `kpmobile bench --virtual arm --runner benchmark_bin`" if not missing else
                        "missing " + "; ".join(missing) + f" (apt-get install {' '.join(DEBIAN_PACKAGES)} gcc)"))
    from kpmobile.sweep.discover import own_runner_file

    local, version = own_runner_file()
    checks.append(Check("runner x86_64", True, f"{local} ({version})"))
    if runner is not None:
        from kpmobile.runners.elf import elf_machine

        machine = elf_machine(runner) if runner.exists() else None
        checks.append(Check(f"runner {machine or '?'}", machine is not None, str(runner)))
    else:
        checks.append(Check("runner arm64-v8a", False,
                            "none given: pass --runner PATH to benchmark_bin for ARM phones"))
    return checks


def checks_json(checks: list[Check]) -> list[dict[str, object]]:
    """Give the checks as plain JSON types."""
    return [asdict(c) for c in checks]
