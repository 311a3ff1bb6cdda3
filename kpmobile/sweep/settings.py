"""The one typed model of a sweep's settings: sweep files and `kpmobile bench` flags both pass it.

Strict (pydantic): "14" is not a thread count, "false" is not a bool, NaN and infinity are not
seconds, an empty list is not a list of models; every count has a range that a phone can honour.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from kpmobile.typed import Field, Strict

Text = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+$")]
Threads = Annotated[int, Field(ge=1, le=256)]
PowerMode = Annotated[int, Field(ge=0, le=3)]
Seconds = Annotated[float, Field(ge=0, le=86_400)]


_NonEmpty = Field(min_length=1, max_length=1000)
TextList = Annotated[list[Text], _NonEmpty]
ThreadList = Annotated[list[Threads], _NonEmpty]
PowerModeList = Annotated[list[PowerMode], _NonEmpty]
BatchList = Annotated[list[Annotated[int, Field(ge=1, le=4096)]], _NonEmpty]
PersonsList = Annotated[list[Annotated[int, Field(ge=1, le=1000)]], _NonEmpty]


class SweepSettings(Strict):
    """Every setting a sweep file or a flag may give; names are BenchOptions' fields."""

    models: TextList | None = None
    threads: ThreadList | None = None
    devices: TextList | None = None
    profiles: TextList | None = None
    servers: TextList | None = Field(default=None, alias="adb_servers")
    no_virtual: bool | None = None
    runner: Text | None = None
    warmup: Annotated[int, Field(ge=0, le=100_000)] | None = None
    repeats: Annotated[int, Field(ge=1, le=100_000)] | None = None
    rounds: Annotated[int, Field(ge=1, le=1000)] | None = None
    power_mode: PowerMode | None = None
    power_modes: PowerModeList | None = None
    precision: Literal["fp32", "fp16"] | None = None
    cooldown_s: Seconds | None = None
    thermal_wait_s: Seconds | None = None
    core_sample_s: Annotated[float, Field(gt=0, le=60)] | None = None
    backends: TextList | None = None
    batches: BatchList | None = None
    pipelines: TextList | None = None
    persons: PersonsList | None = None
    pipeline_runner: Text | None = None
    case_timeout_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    allow_oversubscribe: bool | None = None
    no_wait: bool | None = None

    model_config = {**Strict.model_config, "populate_by_name": True}

    def given(self) -> dict[str, Any]:
        """Give the settings that were set, by BenchOptions field name."""
        return self.model_dump(exclude_none=True)


# sweep-file keys (by alias) and the flags that set each field, for one-line errors
FILE_KEYS = sorted(f.alias or name for name, f in SweepSettings.model_fields.items()
                   if name not in ("allow_oversubscribe", "no_wait"))
FLAGS = {
    "models": "--models", "threads": "--threads", "devices": "--device", "servers": "--adb-server",
    "no_virtual": "--no-virtual", "runner": "--runner", "warmup": "--warmup", "repeats": "--repeats",
    "rounds": "--rounds", "power_mode": "--power-mode", "cooldown_s": "--cooldown", "backends": "--backend",
    "thermal_wait_s": "--thermal-wait",
    "batches": "--batch", "pipelines": "--pipeline", "persons": "--persons", "pipeline_runner": "--pipeline-runner",
    "case_timeout_s": "--case-timeout", "allow_oversubscribe": "--allow-oversubscribe", "no_wait": "--no-wait",
}
# flags that shape a run's plan: a resumed run keeps its own, so giving one with --resume is refused
PLAN_FLAGS = ("models", "threads", "warmup", "repeats", "rounds", "power_mode", "cooldown_s", "backends",
              "batches", "pipelines", "persons", "config")
