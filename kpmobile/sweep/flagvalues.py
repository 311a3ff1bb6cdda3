"""The `kpmobile bench` flags' limits, and a check of well-formed flag values that needs no pydantic.

The typed model (settings.SweepSettings) builds its fields from the limits here, so both say the same.
`plain_settings` gives what the model would give for values that are plainly inside them; anything
else (a value out of range, of another type, a control character) gives None, and the model then
checks it and words the error, so a refused flag reads exactly as before. pydantic's import and
schema build are a fifth of a second of every `kpmobile bench` start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TEXT_MAX = 4096  # characters of one text value
LIST_MAX = 1000  # values of one list
THREADS = (1, 256)
POWER_MODE = (0, 3)
SECONDS_MAX = 86_400  # an int: the model says "less than or equal to 86400"
WARMUP = (0, 100_000)
REPEATS = (1, 100_000)
ROUNDS = (1, 1000)
BATCH = (1, 4096)
PERSONS = (1, 1000)

# the flag that sets each field, for one-line errors
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


@dataclass(frozen=True)
class Rule:
    """What one flag's value must be: its type, its range, and whether it is a (non-empty) list."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the value must be above `low` (gt), not at or above it (ge)
    many: bool = False

    def holds(self, value: Any) -> bool:
        """Tell whether `value` is plainly valid (False: let the typed model decide)."""
        if self.many:
            return type(value) is list and 1 <= len(value) <= LIST_MAX and all(self._one(v) for v in value)
        return self._one(value)

    def _one(self, value: Any) -> bool:
        if type(value) is not self.kind:  # exact: a bool is no int, an int no float, as the strict model
            return False
        if isinstance(value, str):
            return 1 <= len(value) <= TEXT_MAX and all(" " <= c != "\x7f" for c in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return isinstance(value, bool)
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


_TEXTS = Rule(str, many=True)
_TEXT = Rule(str)
_FLAG = Rule(bool)
_SECONDS = Rule(float, 0, SECONDS_MAX)
RULES = {
    "models": _TEXTS, "threads": Rule(int, *THREADS, many=True), "devices": _TEXTS, "servers": _TEXTS,
    "no_virtual": _FLAG, "runner": _TEXT, "warmup": Rule(int, *WARMUP), "repeats": Rule(int, *REPEATS),
    "rounds": Rule(int, *ROUNDS), "power_mode": Rule(int, *POWER_MODE), "cooldown_s": _SECONDS,
    "thermal_wait_s": _SECONDS, "backends": _TEXTS, "batches": Rule(int, *BATCH, many=True), "pipelines": _TEXTS,
    "persons": Rule(int, *PERSONS, many=True), "pipeline_runner": _TEXT,
    "case_timeout_s": Rule(float, 0, SECONDS_MAX, low_open=True), "allow_oversubscribe": _FLAG, "no_wait": _FLAG,
}


def plain_settings(given: dict[str, Any]) -> dict[str, Any] | None:
    """Give the settings `given` (by field name, None dropped already) as the typed model would give
    them, when every value plainly holds; None when one may not (the model then decides)."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        rule = RULES.get(name)
        if rule is None or not rule.holds(value):
            return None
        out[name] = list(value) if rule.many else value
    return out
