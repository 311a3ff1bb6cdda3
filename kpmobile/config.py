"""Device profiles (`device_profiles/*.toml`) as validated records."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import tomli

from kpmobile.errors import ConfigError
from kpmobile.paths import PROFILES_DIR
from kpmobile.records import CpuCluster


@dataclass(frozen=True)
class Profile:
    """What kpmobile knows of a SoC class: big cores, threads to sweep, power mode, thermal limit."""

    name: str
    display: str
    soc: tuple[str, ...]
    threads: tuple[int, ...]
    power_mode: int
    thermal_limit_c: float
    big_cores: tuple[int, ...]
    clusters: tuple[CpuCluster, ...] = ()
    peak_gflops: float | None = None
    getprop: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    cpuinfo: str | None = None


def _profile_from(data: dict[str, Any], source: Path) -> Profile:
    try:
        clusters = tuple(
            CpuCluster(tuple(int(c) for c in cl["cores"]), str(cl["core_name"]), int(cl["max_khz"]))
            for cl in data.get("clusters", [])
        )
        return Profile(
            name=str(data["name"]),
            display=str(data.get("display", data["name"])),
            soc=tuple(str(s).lower() for s in data.get("soc", [])),
            threads=tuple(int(t) for t in data.get("threads", [1, 4])),
            power_mode=int(data.get("power_mode", 0)),
            thermal_limit_c=float(data.get("thermal_limit_c", 45)),
            big_cores=tuple(int(c) for c in data.get("big_cores", [])),
            clusters=clusters,
            peak_gflops=_peak(clusters),
            getprop={str(k): str(v) for k, v in data.get("getprop", {}).items()},
            cpuinfo=data.get("cpuinfo"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"device profile {source} is malformed ({exc})",
                          "fix the file or compare it with device_profiles/kirin980.toml") from exc


def _peak(clusters: tuple[CpuCluster, ...]) -> float | None:
    """Give the peak FP32 GFLOP/s computed from the clusters' core types and frequencies (never typed in)."""
    from kpmobile.devices.midr import peak_gflops

    return peak_gflops(clusters)


def load_profiles(folder: Path = PROFILES_DIR) -> dict[str, Profile]:
    """Give every profile in `folder`, keyed by name (parsed once per process while no file changes:
    one command asks several times, and tomli takes ~70 ms for the 50 files)."""
    if not folder.is_dir():
        raise ConfigError(f"the device profiles folder {folder} does not exist",
                          "reinstall kpmobile (its wheel ships device_profiles/*.toml)")
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.toml")))
    return dict(_profiles_at(str(folder), stamp))


@lru_cache(maxsize=4)
def _profiles_at(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            data = tomli.loads(path.read_text())
        except tomli.TOMLDecodeError as exc:
            raise ConfigError(f"device profile {path} is not valid TOML ({exc})", "fix its syntax") from exc
        profile = _profile_from(data, path)
        profiles[profile.name] = profile
    return profiles


def load_profile(name: str, folder: Path = PROFILES_DIR) -> Profile:
    """Give the profile called `name`, or fail naming the known ones."""
    profiles = load_profiles(folder)
    if name not in profiles:
        raise ConfigError(f"unknown device profile '{name}'",
                          f"use one of: {', '.join(sorted(profiles))}")
    return profiles[name]


def match_profile(soc: str | None, folder: Path = PROFILES_DIR) -> Profile | None:
    """Give the profile whose SoC names include `soc`, or None."""
    if not soc:
        return None
    key = soc.strip().lower()
    for profile in load_profiles(folder).values():
        if key in profile.soc:
            return profile
    return None
