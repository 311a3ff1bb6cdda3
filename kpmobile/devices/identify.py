"""Pure identification of a phone from getprop, /proc/cpuinfo, present-core and cpufreq texts.

Each text is parsed by a function that takes the text, so how the texts are fetched (one shell
call or several) is up to the caller.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from kpmobile.config import Profile, load_profiles
from kpmobile.devices import midr
from kpmobile.devices.soc import SocId, identify_soc, soc_from_hardware
from kpmobile.paths import PROFILES_DIR
from kpmobile.records import CpuCluster

UNKNOWN_CORE = "unknown"


def soc_from_props(props: Mapping[str, str]) -> str | None:
    """Give the SoC a phone reports as its part number, lower-cased (see devices/soc.py)."""
    return identify_soc(props).name


def abis_from_props(props: Mapping[str, str]) -> tuple[str, ...]:
    """Give the ABI list, primary first."""
    listed = [a.strip() for a in (props.get("ro.product.cpu.abilist") or "").split(",") if a.strip()]
    primary = (props.get("ro.product.cpu.abi") or "").strip()
    if primary and primary not in listed:
        listed.insert(0, primary)
    return tuple(listed)


# /proc/cpuinfo ---------------------------------------------------------------------------------
_MIDR_KEYS = {"cpu implementer": "implementer", "cpu variant": "variant", "cpu part": "part"}


def _name_of(fields: Mapping[str, str]) -> str | None:
    """Give the core name of one processor's fields (MIDR, else x86 'model name')."""
    implementer, part = _int(fields.get("implementer")), _int(fields.get("part"))
    if implementer is not None and part is not None:
        return midr.core_name(implementer, part, _int(fields.get("variant")))
    return fields.get("model name") or None


def _cpuinfo_blocks(text: str) -> tuple[list[int], list[tuple[list[int], dict[str, str]]]]:
    """Give every processor number and the (processors, fields) blocks in the order written."""
    numbers: list[int] = []
    blocks: list[tuple[list[int], dict[str, str]]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            continue
        if key == "processor" and value.isdigit():
            numbers.append(int(value))
            if blocks and not blocks[-1][1]:
                blocks[-1][0].append(int(value))  # old kernels list every processor, then one block
            else:
                blocks.append(([int(value)], {}))
        elif blocks and (key in _MIDR_KEYS or key == "model name"):
            blocks[-1][1].setdefault(_MIDR_KEYS.get(key, key), value)
    return numbers, blocks


def cpuinfo_hardware(text: str) -> str | None:
    """Give the value of /proc/cpuinfo's "Hardware" line (older arm kernels print it), or None."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "hardware" and value.strip():
            return value.strip()
    return None


def parse_cpuinfo(text: str) -> dict[int, str]:
    """Give core id -> core name of the cores /proc/cpuinfo lists (the online ones)."""
    cores: dict[int, str] = {}
    for processors, fields in _cpuinfo_blocks(text)[1]:
        name = _name_of(fields)
        if name:
            for core in processors:
                cores[core] = name
    return cores


# /sys/devices/system/cpu ------------------------------------------------------------------------
def parse_cpu_list(text: str) -> tuple[int, ...]:
    """Give the cores of a kernel CPU list such as /sys/devices/system/cpu/present ("0-3,6,8-9")."""
    cores: set[int] = set()
    for part in text.strip().split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            cores.update(range(int(low), int(high or low) + 1))
    return tuple(sorted(c for c in cores if c < 4096))


_FREQ_LINE = re.compile(r"^.*/cpu(\d+)/cpufreq/cpuinfo_max_freq:? (\d+)\s*$")


def parse_max_freqs(text: str) -> dict[int, int]:
    """Give core -> max kHz from "PATH VALUE" lines (`echo "$f $(cat $f)"` over cpuinfo_max_freq files)."""
    freqs: dict[int, int] = {}
    for line in text.splitlines():
        match = _FREQ_LINE.match(line.strip())
        if match:
            freqs[int(match.group(1))] = int(match.group(2))
    return freqs


# clusters, big cores, peak -----------------------------------------------------------------------
def clusters_from(core_names: Mapping[int, str], max_khz: Mapping[int, int],
                  present: Sequence[int] = (), profile: Profile | None = None) -> tuple[CpuCluster, ...]:
    """Give CPU clusters (cores sharing core name and max frequency), slowest first.

    The cores are those present, listed or with a cpufreq entry (a hot-plugged core is missing from
    /proc/cpuinfo); a core /proc/cpuinfo does not name takes its name, and a core without cpufreq
    its frequency, from the profile's clusters, else from a listed core of the same frequency.
    """
    from_profile = {core: cl for cl in (profile.clusters if profile else ()) for core in cl.cores}
    by_freq = {max_khz.get(c): name for c, name in core_names.items() if max_khz.get(c)}
    groups: dict[tuple[str, int], list[int]] = {}
    for core in sorted(set(core_names) | set(max_khz) | set(present)):
        known = from_profile.get(core)
        khz = max_khz.get(core) or (known.max_khz if known else 0)
        name = core_names.get(core) or (known.core_name if known else None) or by_freq.get(khz) or UNKNOWN_CORE
        groups.setdefault((name, khz), []).append(core)
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


def _profiles() -> Mapping[str, Profile]:
    """Give the device profiles, read again only when a profile file changed (50 files take ~70 ms)."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(PROFILES_DIR.glob("*.toml")))
    return _profiles_at(stamp)


@lru_cache(maxsize=2)
def _profiles_at(stamp: tuple[tuple[str, int], ...]) -> Mapping[str, Profile]:
    return load_profiles()


def choose_profile(soc: str | None, profiles: Mapping[str, Profile] | None = None) -> tuple[Profile, str | None]:
    """Give the profile matching `soc`, or the generic one with a warning naming the SoC."""
    profiles = profiles if profiles is not None else _profiles()
    key = (soc or "").strip().lower()
    for profile in profiles.values():
        if key and key in profile.soc:
            return profile, None
    warning = (f"SoC '{soc or 'unknown'}' matches no device profile; using 'generic'"
               " (add a device_profiles/*.toml naming it)")
    return profiles["generic"], warning


@dataclass(frozen=True)
class CpuIdentity:
    """What the texts of one phone tell: chip, profile, clusters, big cores, peak, warnings."""

    soc: str | None
    profile: Profile
    clusters: tuple[CpuCluster, ...]
    big_cores: tuple[int, ...]
    peak_gflops: float | None
    warnings: tuple[str, ...]


def identify_cpu(props: Mapping[str, str], cpuinfo: str = "", present: str = "", freqs: str = "",
                 profiles: Mapping[str, Profile] | None = None) -> CpuIdentity:
    """Give the identity of a phone from its getprop values and the texts of /proc/cpuinfo,
    /sys/devices/system/cpu/present and the cpufreq "PATH VALUE" lines (each may be empty)."""
    found = identify_soc(props)
    if found.name is None or found.warning:  # getprop names no chip: the kernel's Hardware line may
        hardware = soc_from_hardware(cpuinfo_hardware(cpuinfo))
        found = SocId(hardware, cpuinfo_hardware(cpuinfo), "Hardware") if hardware else found
    profile, warning = choose_profile(found.name, profiles)
    known = profile if profile.name != "generic" else None
    clusters = clusters_from(parse_cpuinfo(cpuinfo), parse_max_freqs(freqs), parse_cpu_list(present), known)
    if not clusters and known is not None:
        clusters = known.clusters
    warnings = tuple(w for w in (found.warning, warning) if w)
    return CpuIdentity(found.name, profile, clusters, big_cores(clusters, known), midr.peak_gflops(clusters),
                       warnings)


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


SLOWDOWN_PROP = "kpmobile.virtual.slowdown_pct"  # set by the virtual phone's --slowdown (tests only)


def slowdown_from_props(props: Mapping[str, str]) -> float | None:
    """Give the slowdown in percent a virtual phone says it plays, None when it plays none."""
    try:
        value = float(props.get(SLOWDOWN_PROP) or 0)
    except ValueError:
        return None
    return value if value > 0 else None


# getprop ---------------------------------------------------------------------------------------
_PROP_START = re.compile(r"^\[(?P<key>[^\]\[\s]+)\]: \[(?P<rest>.*)$")
_BUILD_PROP = re.compile(r"^(?P<key>[A-Za-z0-9_][\w.\-]*)=(?P<value>.*)$")


def _prop_entries(lines: Sequence[str]) -> list[tuple[str, str]]:
    """Give (key, value) of a getprop dump in order; a value left open runs on to the line ending ']'."""
    entries: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        match = _PROP_START.match(lines[index])
        index += 1
        if match is None:
            continue
        rest = match.group("rest")
        if rest.endswith("]"):
            entries.append((match.group("key"), rest[:-1]))
            continue
        parts = [rest]
        while index < len(lines) and not lines[index].endswith("]"):
            parts.append(lines[index])
            index += 1
        if index < len(lines):
            parts.append(lines[index][:-1])
            index += 1
        entries.append((match.group("key"), "\n".join(parts)))
    return entries


def _in_order(entries: Sequence[tuple[str, str]], at: int) -> bool:
    """Tell whether entry `at` sits where getprop's sorted output would put its key."""
    key = entries[at][0]
    before = entries[at - 1][0] if at > 0 else ""
    after = entries[at + 1][0] if at + 1 < len(entries) else key
    return before <= key <= after


def parse_getprop(text: str) -> dict[str, str]:
    """Give the properties of an `adb shell getprop` dump (`[key]: [value]` lines, values may span
    lines), or of a build.prop (`key=value`). getprop prints keys sorted, so when a key comes twice
    (a value shaped like a property line), the one in sorted position wins."""
    lines = [line.rstrip("\r") for line in text.splitlines()]
    entries = _prop_entries(lines)
    if not entries:
        return _build_props(lines)
    props: dict[str, str] = {}
    placed: set[str] = set()
    for at, (key, value) in enumerate(entries):
        ordered = _in_order(entries, at)
        if key not in props or (ordered and key not in placed):
            props[key] = value
        if ordered:
            placed.add(key)
    return props


def _build_props(lines: Sequence[str]) -> dict[str, str]:
    """Give the properties of a build.prop (`key=value`, '#' comments); the first value of a key wins."""
    props: dict[str, str] = {}
    for line in lines:
        match = _BUILD_PROP.match(line.strip())
        if match:
            props.setdefault(match.group("key"), match.group("value"))
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
