"""Device profiles (`device_profiles/*.toml`) as validated records."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.paths import PROFILES_DIR
from kpmobile.records import CpuCluster

BATTERY_VENDORS = ("none", "ua-negative", "ma-positive")


@dataclass(frozen=True)
class Physics:
    """How a virtual phone of this profile turns CPU use into battery current, heat and throttling."""

    idle_w: float = 0.8  # the whole phone at rest
    core_w: dict[str, float] = field(default_factory=dict, hash=False, compare=False)  # per fully busy core
    default_core_w: float = 1.0  # core types core_w does not name
    voltage_v: float = 3.85
    battery: str = "ua-negative"  # the vendor convention: none | ua-negative | ma-positive
    ambient_c: float = 30.0
    resistance_c_per_w: float = 8.0  # steady-state rise per watt above idle
    time_constant_s: float = 20.0
    trip_c: float = 45.0  # above it the big cluster's scaling_max_freq drops
    hysteresis_c: float = 2.0  # restored below trip_c - hysteresis_c
    throttle_ratio: float = 0.6  # the big cluster's max frequency while throttled, as a share of its max


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
    physics: Physics | None = None  # virtual phones only


def _physics_from(data: dict[str, Any] | None) -> Physics | None:
    if data is None:
        return None
    known = {k: v for k, v in data.items() if k in Physics.__dataclass_fields__}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown [physics] keys {unknown}")
    values: dict[str, Any] = {k: ({str(n): float(w) for n, w in v.items()} if k == "core_w"
                                  else str(v) if k == "battery" else float(v)) for k, v in known.items()}
    phys = Physics(**values)
    if phys.battery not in BATTERY_VENDORS:
        raise ValueError(f"[physics] battery must be one of {', '.join(BATTERY_VENDORS)}")
    if not (0 < phys.throttle_ratio <= 1 and phys.time_constant_s > 0):
        raise ValueError("[physics] needs 0 < throttle_ratio <= 1 and time_constant_s > 0")
    return phys


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
            physics=_physics_from(data.get("physics")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
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
    paths = sorted(Path(folder).glob("*.toml"))
    profiles: dict[str, Profile] = {}
    for path, data in zip(paths, _profile_data(paths)):
        profile = _profile_from(data, path)
        profiles[profile.name] = profile
    return profiles


def _profile_data(paths: list[Path]) -> list[dict[str, Any]]:
    """Give the parsed TOML of each profile file, remembered across runs while it is unchanged
    (kpmobile.filememo.toml_data), so a command that identifies a phone neither imports nor runs tomli."""
    from kpmobile.filememo import toml_data

    out = []
    for path in paths:
        try:
            out.append(toml_data(path))
        except ValueError as exc:  # tomli.TOMLDecodeError
            raise ConfigError(f"device profile {path} is not valid TOML ({exc})", "fix its syntax") from exc
    return out


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
