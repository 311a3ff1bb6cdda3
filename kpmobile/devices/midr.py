"""Core names and FMA widths by MIDR (device_profiles/tables/cores.toml), and peak FP32 GFLOP/s from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.filememo import toml_data
from kpmobile.paths import PROFILES_DIR
from kpmobile.records import CpuCluster

CORES_FILE = "tables/cores.toml"


@dataclass(frozen=True)
class CoreType:
    """One CPU core design as /proc/cpuinfo identifies it."""

    implementer: int
    part: int
    variant: int | None  # only Samsung's cores need it
    name: str
    fma_bits: int  # FP32 FMA width issued per cycle, summed over the FP/SIMD pipes

    @property
    def flops_per_cycle(self) -> float:
        """Give FP32 FLOPs per cycle: 2 per FMA lane, 32-bit lanes."""
        return 2 * self.fma_bits / 32


@lru_cache(maxsize=4)
def core_table(folder: Path = PROFILES_DIR) -> tuple[CoreType, ...]:
    """Give every core of device_profiles/tables/cores.toml."""
    path = folder / CORES_FILE
    try:
        data: dict[str, Any] = toml_data(path)  # tomli.TOMLDecodeError is a ValueError
        return tuple(
            CoreType(int(c["implementer"]), int(c["part"]),
                     int(c["variant"]) if "variant" in c else None, str(c["name"]), int(c["fma_bits"]))
            for c in data.get("core", [])
        )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"core table {path} is unreadable or malformed ({exc})",
                          "fix the file; each [[core]] needs implementer, part, name and fma_bits") from exc


def core_type(implementer: int, part: int, variant: int | None = None) -> CoreType | None:
    """Give the core of an MIDR (a variant-specific entry wins), or None when the table lacks it."""
    loose: CoreType | None = None
    for core in core_table():
        if core.implementer != implementer or core.part != part:
            continue
        if core.variant is None and loose is None:
            loose = core
        elif core.variant is not None and core.variant == variant:
            return core
    if loose is None and variant is None:
        loose = next((c for c in core_table() if (c.implementer, c.part) == (implementer, part)), None)
    return loose


def core_name(implementer: int, part: int, variant: int | None = None) -> str:
    """Give a core's name, or "0xII/0xPPP" when the table does not know it."""
    core = core_type(implementer, part, variant)
    return core.name if core is not None else f"0x{implementer:02x}/0x{part:03x}"


def by_name(name: str) -> CoreType | None:
    """Give the first core of the table called `name`."""
    return next((c for c in core_table() if c.name == name), None)


def cluster_gflops(cluster: CpuCluster) -> float | None:
    """Give a cluster's peak FP32 GFLOP/s (cores x GHz x FLOPs/cycle), None if core or frequency unknown."""
    core = by_name(cluster.core_name)
    if core is None or cluster.max_khz <= 0:
        return None
    return len(cluster.cores) * cluster.max_khz / 1e6 * core.flops_per_cycle


def peak_gflops(clusters: Iterable[CpuCluster]) -> float | None:
    """Give the chip's peak FP32 GFLOP/s summed over its clusters; None unless every cluster is known."""
    total = 0.0
    found = False
    for cluster in clusters:
        value = cluster_gflops(cluster)
        if value is None:
            return None
        total, found = total + value, True
    return round(total, 1) if found else None
