"""The one typed model of a sweep's settings: sweep files and `kpmobile bench` flags both pass it.

Strict (pydantic): "14" is not a thread count, "false" is not a bool, NaN and infinity are not
seconds, an empty list is not a list of models; every count has a range that a phone can honour.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from kpmobile.sweep.flagvalues import (
    BATCH,
    FLAGS,
    LIST_MAX,
    PERSONS,
    PLAN_FLAGS,
    POWER_MODE,
    REPEATS,
    ROUNDS,
    SECONDS_MAX,
    TEXT_MAX,
    THREADS,
    WARMUP,
)
from kpmobile.typed import Field, Strict

__all__ = ["FILE_KEYS", "FLAGS", "PLAN_FLAGS", "SweepSettings"]

Text = Annotated[str, Field(min_length=1, max_length=TEXT_MAX, pattern=r"^[^\x00-\x1f\x7f]+$")]
Threads = Annotated[int, Field(ge=THREADS[0], le=THREADS[1])]
PowerMode = Annotated[int, Field(ge=POWER_MODE[0], le=POWER_MODE[1])]
Seconds = Annotated[float, Field(ge=0, le=SECONDS_MAX)]


_NonEmpty = Field(min_length=1, max_length=LIST_MAX)
TextList = Annotated[list[Text], _NonEmpty]
ThreadList = Annotated[list[Threads], _NonEmpty]
PowerModeList = Annotated[list[PowerMode], _NonEmpty]
BatchList = Annotated[list[Annotated[int, Field(ge=BATCH[0], le=BATCH[1])]], _NonEmpty]
PersonsList = Annotated[list[Annotated[int, Field(ge=PERSONS[0], le=PERSONS[1])]], _NonEmpty]


class SweepSettings(Strict):
    """Every setting a sweep file or a flag may give; names are BenchOptions' fields."""

    models: TextList | None = None
    threads: ThreadList | None = None
    devices: TextList | None = None
    profiles: TextList | None = None
    servers: TextList | None = Field(default=None, alias="adb_servers")
    no_virtual: bool | None = None
    runner: Text | None = None
    warmup: Annotated[int, Field(ge=WARMUP[0], le=WARMUP[1])] | None = None
    repeats: Annotated[int, Field(ge=REPEATS[0], le=REPEATS[1])] | None = None
    rounds: Annotated[int, Field(ge=ROUNDS[0], le=ROUNDS[1])] | None = None
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
    case_timeout_s: Annotated[float, Field(gt=0, le=SECONDS_MAX)] | None = None
    allow_oversubscribe: bool | None = None
    no_wait: bool | None = None

    model_config = {**Strict.model_config, "populate_by_name": True}

    def given(self) -> dict[str, Any]:
        """Give the settings that were set, by BenchOptions field name."""
        return self.model_dump(exclude_none=True)


# sweep-file keys (by alias), for one-line errors; the flags' names and PLAN_FLAGS are flagvalues'
FILE_KEYS = sorted(f.alias or name for name, f in SweepSettings.model_fields.items()
                   if name not in ("allow_oversubscribe", "no_wait"))
