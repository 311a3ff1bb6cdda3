"""Which machine a runner binary is built for (its ELF e_machine), checked against a device's ABI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kpmobile.errors import RunnerError

ELF_MAGIC = b"\x7fELF"
# e_machine -> (Android ABI, the name the ELF world uses)
MACHINES: dict[int, tuple[str, str]] = {
    183: ("arm64-v8a", "aarch64"),  # EM_AARCH64
    40: ("armeabi-v7a", "arm"),  # EM_ARM
    62: ("x86_64", "x86-64"),  # EM_X86_64
    3: ("x86", "i386"),  # EM_386
}
# build_android.sh knows armv8 and armv7 only; x86 devices take kpmobile's lite_runner
_BUILD_HINTS = {
    "arm64-v8a": "build benchmark_bin for arm64-v8a (lite/tools/build_android.sh --arch=armv8 "
    "--with_benchmark=ON full_publish) or pass the right --runner",
    "armeabi-v7a": "build benchmark_bin for armeabi-v7a (lite/tools/build_android.sh --arch=armv7 "
    "--with_benchmark=ON full_publish) or pass the right --runner",
}
_X86_HINT = (
    "Paddle Lite builds no benchmark_bin for x86 Android: run kpmobile's lite_runner there, "
    "or pass the right --runner"
)


def _e_machine(path: Path) -> int | None:
    """Give the e_machine number of an ELF file, None when the file is not an ELF."""
    with Path(path).open("rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return None
    if head[5] == 2:  # EI_DATA: 1 little-endian, 2 big-endian
        return int.from_bytes(head[18:20], "big")
    return int.from_bytes(head[18:20], "little")


def elf_machine(path: Path) -> str | None:
    """Give the Android ABI an ELF file is built for ("arm64-v8a", "x86_64", ...), None if not an ELF.

    A machine outside the four Android ABIs comes back as "e_machine N". OSError if unreadable.
    """
    number = _e_machine(path)
    if number is None:
        return None
    return MACHINES[number][0] if number in MACHINES else f"e_machine {number}"


def _elf_name(abi: str) -> str:
    """Give the ELF-world name of an ABI ("aarch64" for "arm64-v8a")."""
    for android, elf in MACHINES.values():
        if android == abi:
            return elf
    return abi


def check_runner_abi(path: Path, abi: str, abis: Sequence[str] = (), serial: str | None = None) -> None:
    """Give nothing when the runner at `path` can run on a device of ABI `abi`; raise RunnerError if not.

    `abis` is the device's ro.product.cpu.abilist: a 32-bit arm runner runs on an arm64 device only
    when it lists armeabi-v7a. A script (`#!`) passes: it runs wherever its interpreter does.
    """
    path = Path(path)
    device = f"device {serial}" if serial else "the device"
    if not path.is_file():
        raise RunnerError(
            f"runner {path} not found" if not path.exists() else f"runner {path} is not a file",
            "build benchmark_bin (lite/tools/build_android.sh --with_benchmark=ON full_publish) "
            "or pass the right --runner",
        )
    try:
        found = elf_machine(path)
        with path.open("rb") as fh:
            head = fh.read(2)
    except OSError as exc:
        raise RunnerError(f"runner {path} cannot be read: {exc.strerror}", "check its permissions") from None
    if found is None:
        if head == b"#!":
            return
        raise RunnerError(
            f"runner {path} is neither an ELF executable nor a script",
            "pass benchmark_bin or kpmobile's lite_runner as --runner",
        )
    if found == abi or found in abis:
        return
    listed = f" (abilist: {','.join(abis)})" if abis else ""
    raise RunnerError(
        f"runner {path} is built for {_elf_name(found)} ({found}) but {device} reports {abi}{listed}",
        _BUILD_HINTS.get(abi) or (_X86_HINT if abi in ("x86_64", "x86") else
                                   f"pass a runner built for {abi} as --runner"),
    )
