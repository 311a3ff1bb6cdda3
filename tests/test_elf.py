"""kpmobile.runners.elf on ELF headers written byte by byte, /bin/ls and scripts."""

from __future__ import annotations

import platform
import struct
from pathlib import Path

import pytest

from kpmobile.errors import RunnerError
from kpmobile.runners import LITE_RUNNER_PATH, check_runner_abi, elf_machine

EM_386, EM_ARM, EM_X86_64, EM_AARCH64, EM_RISCV = 3, 40, 62, 183, 243


def write_elf(path: Path, machine: int, bits: int = 64, big_endian: bool = False) -> Path:
    """Write the first 64 bytes of an ELF executable: e_ident, e_type, e_machine, e_version."""
    order = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 2 if big_endian else 1, 1, 0]) + bytes(8)
    header = ident + struct.pack(order + "HHI", 2, machine, 1)  # ET_EXEC, e_machine, EV_CURRENT
    path.write_bytes(header.ljust(64, b"\x00"))
    return path


@pytest.mark.parametrize(("machine", "bits", "big_endian", "abi"), [
    (EM_AARCH64, 64, False, "arm64-v8a"),
    (EM_ARM, 32, False, "armeabi-v7a"),
    (EM_X86_64, 64, False, "x86_64"),
    (EM_386, 32, False, "x86"),
    (EM_AARCH64, 64, True, "arm64-v8a"),
    (EM_RISCV, 64, False, "e_machine 243"),
])
def test_elf_machine_of_written_headers(tmp_path: Path, machine: int, bits: int, big_endian: bool,
                                        abi: str) -> None:
    assert elf_machine(write_elf(tmp_path / "runner", machine, bits, big_endian)) == abi


@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/bin/ls").exists(), reason="needs x86_64 /bin/ls")
def test_bin_ls_is_x86_64() -> None:
    assert elf_machine(Path("/bin/ls")) == "x86_64"


def test_non_elf_files_are_none(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF\x02\x01")
    assert [elf_machine(p) for p in (script, empty, short, LITE_RUNNER_PATH)] == [None, None, None, None]


def test_elf_machine_of_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        elf_machine(tmp_path / "missing")


def test_matching_runner_passes(tmp_path: Path) -> None:
    check_runner_abi(write_elf(tmp_path / "benchmark_bin", EM_AARCH64), "arm64-v8a")
    check_runner_abi(write_elf(tmp_path / "x86_runner", EM_X86_64), "x86_64", serial="emulator-5554")


def test_aarch64_runner_on_x86_64_device(tmp_path: Path) -> None:
    runner = write_elf(tmp_path / "benchmark_bin", EM_AARCH64)
    with pytest.raises(RunnerError) as info:
        check_runner_abi(runner, "x86_64", abis=("x86_64", "x86"), serial="emulator-5554")
    assert info.value.message == (f"runner {runner} is built for aarch64 (arm64-v8a) but device emulator-5554 "
                                  "reports x86_64 (abilist: x86_64,x86)")
    assert info.value.hint == ("Paddle Lite builds no benchmark_bin for x86 Android: run kpmobile's lite_runner "
                               "there, or pass the right --runner")


def test_x86_64_runner_on_arm64_device(tmp_path: Path) -> None:
    runner = write_elf(tmp_path / "benchmark_bin", EM_X86_64)
    with pytest.raises(RunnerError) as info:
        check_runner_abi(runner, "arm64-v8a")
    assert info.value.message == f"runner {runner} is built for x86-64 (x86_64) but the device reports arm64-v8a"
    assert info.value.hint == ("build benchmark_bin for arm64-v8a (lite/tools/build_android.sh --arch=armv8 "
                               "--with_benchmark=ON full_publish) or pass the right --runner")


def test_32_bit_arm_runner_needs_armeabi_in_abilist(tmp_path: Path) -> None:
    runner = write_elf(tmp_path / "benchmark_bin", EM_ARM, bits=32)
    check_runner_abi(runner, "arm64-v8a", abis=["arm64-v8a", "armeabi-v7a", "armeabi"], serial="R58M123")
    with pytest.raises(RunnerError) as info:  # a 64-bit-only phone
        check_runner_abi(runner, "arm64-v8a", abis=["arm64-v8a"], serial="R58M123")
    assert info.value.message == (f"runner {runner} is built for arm (armeabi-v7a) but device R58M123 reports "
                                  "arm64-v8a (abilist: arm64-v8a)")
    with pytest.raises(RunnerError):  # no abilist: nothing says the phone runs 32-bit code
        check_runner_abi(runner, "arm64-v8a")


def test_64_bit_runner_on_32_bit_device(tmp_path: Path) -> None:
    runner = write_elf(tmp_path / "benchmark_bin", EM_AARCH64)
    with pytest.raises(RunnerError) as info:
        check_runner_abi(runner, "armeabi-v7a", abis=["armeabi-v7a", "armeabi"])
    assert "--arch=armv7" in info.value.hint


def test_missing_runner(tmp_path: Path) -> None:
    missing = tmp_path / "benchmark_bin"
    with pytest.raises(RunnerError) as info:
        check_runner_abi(missing, "arm64-v8a", serial="R58M123")
    assert info.value.message == f"runner {missing} not found"
    assert "build_android.sh" in info.value.hint and "--runner" in info.value.hint
    with pytest.raises(RunnerError, match="is not a file"):
        check_runner_abi(tmp_path, "arm64-v8a")


def test_scripts_pass_and_other_files_fail(tmp_path: Path) -> None:
    script = tmp_path / "lite_runner"
    script.write_text("#!/usr/bin/python3\nprint('hi')\n")
    check_runner_abi(script, "x86_64")  # runs wherever its interpreter does
    blob = tmp_path / "blob"
    blob.write_bytes(b"MZ\x90\x00" + bytes(60))
    with pytest.raises(RunnerError) as info:
        check_runner_abi(blob, "x86_64")
    assert info.value.message == f"runner {blob} is neither an ELF executable nor a script"

