"""Sweep files (`sweeps/*.toml`) -> BenchOptions, with command-line flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli

from kpmobile.errors import ConfigError
from kpmobile.sweep.plan import BenchOptions, split_pipeline, with_overrides

# sweep-file key -> (BenchOptions field, converter)
_KEYS: dict[str, tuple[str, Any]] = {
    "models": ("models", lambda v: [str(x) for x in v]),
    "threads": ("threads", lambda v: [int(x) for x in v]),
    "devices": ("devices", lambda v: [str(x) for x in v]),
    "profiles": ("profiles", lambda v: [str(x) for x in v]),
    "adb_servers": ("servers", lambda v: [str(x) for x in v]),
    "no_virtual": ("no_virtual", bool),
    "runner": ("runner", Path),
    "warmup": ("warmup", int),
    "repeats": ("repeats", int),
    "rounds": ("rounds", int),
    "power_mode": ("power_mode", int),
    "power_modes": ("power_modes", lambda v: [int(x) for x in v]),
    "precision": ("precision", str),
    "cooldown_s": ("cooldown_s", float),
    "thermal_wait_s": ("thermal_wait_s", float),
    "core_sample_s": ("core_sample_s", float),
    "backends": ("backends", lambda v: [str(x) for x in v]),
    "batches": ("batches", lambda v: [int(x) for x in v]),
    "pipelines": ("pipelines", lambda v: [str(x) for x in v]),
    "persons": ("persons", lambda v: [int(x) for x in v]),
    "pipeline_runner": ("pipeline_runner", Path),
    "case_timeout_s": ("case_timeout_s", float),
}


def options_from_file(path: Path) -> dict[str, Any]:
    """Give the BenchOptions fields a sweep file sets."""
    if not path.is_file():
        raise ConfigError(f"no sweep file {path}", "give the path of a TOML sweep file, e.g. sweeps/mobile_table.toml")
    try:
        data = tomli.loads(path.read_text())
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"sweep file {path} is not valid TOML ({exc})", "fix its syntax") from exc
    table = data.get("sweep", data)
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(f"sweep file {path}: unknown key '{key}'",
                              f"use one of: {', '.join(sorted(_KEYS))}")
        name, conv = _KEYS[key]
        try:
            out[name] = conv(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"sweep file {path}: bad value for '{key}' ({exc})", "fix the value") from exc
    if "precision" in out and out["precision"] not in ("fp32", "fp16"):
        raise ConfigError(f"sweep file {path}: precision must be fp32 or fp16", "fix 'precision'")
    check_pipelines(out.get("pipelines", ()), f"sweep file {path}: ")
    return out


def check_pipelines(pipelines: Any, where: str = "") -> None:
    """Give nothing when every pipeline is DETECTOR+POSE; ConfigError naming the bad one otherwise."""
    for pipe in pipelines or ():
        try:
            split_pipeline(pipe)
        except ValueError as exc:
            raise ConfigError(f"{where}{exc}", "write --pipeline DETECTOR+POSE") from None


def load_options(config: Path | None, overrides: dict[str, Any]) -> BenchOptions:
    """Give the sweep's options: defaults, then the sweep file, then the flags that were given."""
    base = BenchOptions()
    if config is not None:
        base = with_overrides(base, options_from_file(config))
    opts = with_overrides(base, overrides)
    check_pipelines(opts.pipelines)
    return opts
