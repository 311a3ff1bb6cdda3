"""Pure identification of a phone from getprop, /proc/cpuinfo and cpufreq values."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from kpmobile.config import Profile, load_profiles
from kpmobile.records import CpuCluster

# (implementer, part) -> core name, from the ARM and Qualcomm CPU part registers.
CORE_NAMES: dict[tuple[int, int], str] = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD46): "Cortex-A510",
    (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD48): "Cortex-X2",
    (0x51, 0x800): "Kryo 260 Gold",
    (0x51, 0x801): "Kryo 260 Silver",
    (0x51, 0x802): "Kryo 385 Gold",
    (0x51, 0x803): "Kryo 385 Silver",
    (0x51, 0x804): "Kryo 485 Gold",
    (0x51, 0x805): "Kryo 485 Silver",
}

_HUAWEI_SOC_KEYS = ("ro.product.vendor.model", "ro.hardware.chipname", "ro.config.hw_chipname")


def soc_from_props(props: Mapping[str, str]) -> str | None:
    """Give the SoC name a phone reports, lower-cased, by the most trustworthy property."""
    api = _int(props.get("ro.build.version.sdk"))
    ordered: list[str] = []
    if api is None or api >= 31:
        ordered.append("ro.soc.model")
    ordered += ["ro.board.platform", "ro.vendor.qti.soc_name", "ro.hardware.chipname"]
    for key in ordered:
        value = (props.get(key) or "").strip().lower()
        if value and value not in ("qcom", "unknown"):
            return value
    # Huawei puts the SoC name (e.g. "kirin980") in vendor props; Qualcomm says "qcom" in ro.hardware.
    for key in _HUAWEI_SOC_KEYS:
        value = (props.get(key) or "").strip().lower()
        if value.startswith("kirin") or value.startswith("hi"):
            return value
    hardware = (props.get("ro.hardware") or "").strip().lower()
    return hardware or None


def abis_from_props(props: Mapping[str, str]) -> tuple[str, ...]:
    """Give the ABI list, primary first."""
    listed = [a.strip() for a in (props.get("ro.product.cpu.abilist") or "").split(",") if a.strip()]
    primary = (props.get("ro.product.cpu.abi") or "").strip()
    if primary and primary not in listed:
        listed.insert(0, primary)
    return tuple(listed)


def parse_cpuinfo(text: str) -> dict[int, str]:
    """Give core id -> core name from /proc/cpuinfo (CPU implementer and CPU part lines)."""
    cores: dict[int, str] = {}
    current: int | None = None
    implementer: int | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor" and value.isdigit():
            current, implementer = int(value), None
        elif key == "cpu implementer" and current is not None:
            implementer = _int(value)
        elif key == "cpu part" and current is not None:
            part = _int(value)
            if implementer is not None and part is not None:
                cores[current] = CORE_NAMES.get((implementer, part), f"0x{implementer:02x}/0x{part:03x}")
        elif key == "model name" and current is not None and current not in cores:
            cores[current] = value
    return cores


def clusters_from(core_names: Mapping[int, str], max_khz: Mapping[int, int]) -> tuple[CpuCluster, ...]:
    """Give CPU clusters (cores sharing core name and max frequency), slowest first."""
    groups: dict[tuple[str, int], list[int]] = {}
    for core in sorted(set(core_names) | set(max_khz)):
        key = (core_names.get(core, "unknown"), max_khz.get(core, 0))
        groups.setdefault(key, []).append(core)
    clusters = [CpuCluster(tuple(cores), name, khz) for (name, khz), cores in groups.items()]
    return tuple(sorted(clusters, key=lambda c: (c.max_khz, c.cores)))


def big_cores(clusters: Sequence[CpuCluster], profile: Profile | None) -> tuple[int, ...]:
    """Give the big-core ids: the profile's if it names them, else the fastest cluster(s) above the slowest."""
    if profile is not None and profile.big_cores:
        return profile.big_cores
    if not clusters:
        return ()
    slowest = min(c.max_khz for c in clusters)
    big = [core for c in clusters if c.max_khz > slowest for core in c.cores]
    return tuple(sorted(big)) if big else tuple(sorted(core for c in clusters for core in c.cores))


def choose_profile(soc: str | None, profiles: Mapping[str, Profile] | None = None) -> tuple[Profile, str | None]:
    """Give the profile matching `soc`, or the generic one with a warning naming the SoC."""
    profiles = profiles if profiles is not None else load_profiles()
    key = (soc or "").strip().lower()
    for profile in profiles.values():
        if key and key in profile.soc:
            return profile, None
    warning = (f"SoC '{soc or 'unknown'}' matches no device profile; using 'generic'"
               " (add a device_profiles/*.toml naming it)")
    return profiles["generic"], warning


def fingerprint(props: Mapping[str, str], serial: str) -> str:
    """Give a stable id of a physical phone, the same through any adb server."""
    hw_serial = (props.get("ro.serialno") or props.get("ro.boot.serialno") or "").strip()
    parts = [
        hw_serial or serial,
        props.get("ro.product.brand", ""),
        props.get("ro.product.model", ""),
        props.get("ro.build.fingerprint", ""),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def parse_getprop(text: str) -> dict[str, str]:
    """Give the properties of an `adb shell getprop` dump (`[key]: [value]` lines)."""
    props: dict[str, str] = {}
    for match in re.finditer(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE):
        props[match.group(1)] = match.group(2)
    return props


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip(), 0)
    except ValueError:
        return None


_EMULATED_PROPS = ("ro.kernel.qemu", "ro.boot.qemu")


def emulated_from_props(props: Mapping[str, str]) -> bool:
    """Tell whether the phone says it runs under qemu (the Android emulator's ro.kernel.qemu /
    ro.boot.qemu = 1, which kpmobile's ARM virtual phone sets too): its timings are not a phone's."""
    return any((props.get(key) or "").strip() == "1" for key in _EMULATED_PROPS)
