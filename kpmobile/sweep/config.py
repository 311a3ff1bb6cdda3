"""Sweep files (`sweeps/*.toml`) and `kpmobile bench` flags -> BenchOptions, through one typed model.

Flags whose values plainly hold (sweep.flagvalues) skip the model, and with it pydantic's import;
a sweep file, and any flag value that may not hold, go through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.sweep.flagvalues import FLAGS, PLAN_FLAGS, plain_settings
from kpmobile.sweep.plan import BenchOptions, split_pipeline, with_overrides

_PATHS = ("runner", "pipeline_runner")


def read_sweep_file(path: Path) -> dict[str, Any]:
    """Give the table of a sweep file (`[sweep]`, or the top level) as TOML read it."""
    if not path.is_file():
        raise ConfigError(f"no sweep file {path}", "give the path of a TOML sweep file, e.g. sweeps/mobile_table.toml")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"sweep file {path} is not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}", "check the path") from None
    import tomli  # only a sweep file is TOML: a sweep from flags alone need not import it

    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"sweep file {path} is not valid TOML ({exc})", "fix its syntax") from None
    table = data.get("sweep", data)
    if not isinstance(table, dict):
        raise ConfigError(f"sweep file {path}: [sweep] is not a table", "write the settings under [sweep]")
    return table


def options_from_file(path: Path) -> dict[str, Any]:
    """Give the BenchOptions fields a sweep file sets, checked by the typed model."""
    from kpmobile.sweep.settings import FILE_KEYS, SweepSettings
    from kpmobile.typed import validate

    table = read_sweep_file(path)
    unknown = sorted(set(table) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown key {ascii(unknown[0])}", f"use one of: {', '.join(FILE_KEYS)}")
    settings = validate(SweepSettings, table, f"sweep file {path}", "fix that value")
    out = settings.given()
    check_pipelines(out.get("pipelines", ()), f"sweep file {path}: ")
    return _with_paths(out)


def options_from_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Give the BenchOptions fields the given flags set (None: not given), checked as the typed model checks."""
    given = {k: (str(v) if k in _PATHS else v) for k, v in flags.items() if v is not None and k in FLAGS}
    out = plain_settings(given)
    if out is None:
        from kpmobile.sweep.settings import SweepSettings
        from kpmobile.typed import validate

        out = validate(SweepSettings, given, "", "fix the value of {field}", FLAGS).given()
    check_pipelines(out.get("pipelines", ()))
    return _with_paths(out)


def _with_paths(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (Path(v) if k in _PATHS else v) for k, v in values.items()}


def check_resume_flags(flags: dict[str, Any]) -> None:
    """Refuse flags a resumed run cannot honour: it keeps the models and settings it was planned with."""
    if flags.get("resume") is None:
        return
    from kpmobile.store.runid import check_run_id

    check_run_id(flags["resume"], "--resume")
    given = [k for k in PLAN_FLAGS if flags.get(k) is not None]
    if given:
        name = "--config" if given[0] == "config" else FLAGS[given[0]]
        raise ConfigError(f"--resume keeps the run's own plan, so {name} cannot be honoured",
                          f"drop {name}, or start a new run without --resume")


def check_pipelines(pipelines: Any, where: str = "") -> None:
    """Give nothing when every pipeline is DETECTOR+POSE; ConfigError naming the bad one otherwise."""
    for pipe in pipelines or ():
        try:
            split_pipeline(pipe)
        except ValueError as exc:
            raise ConfigError(f"{where}{exc}", "write --pipeline DETECTOR+POSE") from None


def load_options(config: Path | None, overrides: dict[str, Any]) -> BenchOptions:
    """Give the sweep's options: defaults, then the sweep file, then the flags that were given.

    Flags outside the typed settings (db, out_dir, resume, config) are taken as they are.
    """
    check_resume_flags({**overrides, "config": config})
    base = BenchOptions()
    if config is not None:
        base = with_overrides(base, options_from_file(config))
    typed = options_from_flags(overrides)
    rest = {k: v for k, v in overrides.items() if k not in FLAGS}
    rest["config"] = config
    opts = with_overrides(base, {**rest, **typed})
    check_pipelines(opts.pipelines)
    return opts
