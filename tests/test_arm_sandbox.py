"""The ARM virtual phone's sandbox and exec shim, without adb: properties, /proc/cpuinfo, and how
programs in the sandbox are started (pure set-up plus real /bin/sh processes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kpmobile.config import load_profile
from kpmobile.devices.identify import emulated_from_props, parse_cpuinfo
from kpmobile.devices.virtual_phone.emulation import Emulation, build_shim
from kpmobile.devices.virtual_phone.sandbox import Sandbox, force_abis

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) to build the exec shim")


def test_force_abis_lists_only_what_the_phone_runs() -> None:
    props = {"ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
             "ro.vendor.product.cpu.abilist32": "armeabi-v7a,armeabi", "ro.product.cpu.abilist64": "arm64-v8a"}
    out = force_abis(props, ("arm64-v8a",))
    assert out["ro.product.cpu.abilist"] == "arm64-v8a" and out["ro.vendor.product.cpu.abilist32"] == ""
    assert out["ro.product.cpu.abilist64"] == "arm64-v8a"
    assert force_abis(props, ("arm64-v8a", "armeabi-v7a"))["ro.vendor.product.cpu.abilist32"] == "armeabi-v7a"


def test_emulated_is_what_the_phone_says() -> None:
    assert emulated_from_props({"ro.kernel.qemu": "1"}) and emulated_from_props({"ro.boot.qemu": "1"})
    assert not emulated_from_props({"ro.kernel.qemu": "0"}) and not emulated_from_props({})


@needs_cc
def test_arm_sandbox_runs_programs_as_an_arm_phone_would(tmp_path: Path) -> None:
    shim = build_shim(tmp_path / "shim")
    assert build_shim(tmp_path / "shim") == shim  # cached by source hash
    # No qemu in this emulation: an aarch64 ELF is then refused like any foreign ELF.
    emulation = Emulation("/nonexistent/qemu-aarch64", Path("/usr/aarch64-linux-gnu"), shim)
    sandbox = Sandbox(tmp_path / "root")
    sandbox.prepare(load_profile("kirin980"), abi="arm64-v8a", emulation=emulation)
    assert sandbox.props["ro.product.cpu.abi"] == "arm64-v8a" and sandbox.props["ro.kernel.qemu"] == "1"
    cores = parse_cpuinfo((sandbox.root / "proc" / "cpuinfo").read_text())
    assert len(cores) == 8
    tmp = sandbox.root / "data" / "local" / "tmp"
    shutil.copy("/bin/true", tmp / "x86bin")
    (tmp / "runner").write_text("#!/usr/bin/python3\nprint('ran')\n")
    (tmp / "ok.sh").write_text("#!/bin/sh\necho fine\n")
    for name in ("runner", "ok.sh"):
        (tmp / name).chmod(0o755)

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", sandbox.rewrite_command(command)], cwd=sandbox.root,
                              env=sandbox.shell_env(), capture_output=True, text=True, timeout=30)

    res = sh("cd /data/local/tmp && ./x86bin")
    assert (res.returncode, res.stderr) == (1, "/system/bin/sh: ./x86bin: not executable: 64-bit ELF file\n")
    res = sh("timeout 5 /data/local/tmp/x86bin")
    assert res.returncode == 1 and "/data/local/tmp/x86bin: not executable: 64-bit ELF file" in res.stderr
    res = sh("/data/local/tmp/runner")  # kpmobile's #!python runner: no such interpreter on a phone
    assert res.returncode == 126 and "No such file or directory" in res.stderr and "ran" not in res.stdout
    assert sh("/data/local/tmp/ok.sh").stdout == "fine\n"  # the phone's shell runs scripts
    assert sh("true && echo system").stdout == "system\n"  # the phone's own (host) binaries run
