"""Run ids: the one form kpmobile makes (YYYYMMDD-HHMMSS-xxxxxx), checked wherever an id comes from outside."""

from __future__ import annotations

import re

from kpmobile.errors import ConfigError

RUN_ID_PATTERN = r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$"
RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def is_run_id(text: object) -> bool:
    """Tell whether `text` has the form of a run id kpmobile makes."""
    return isinstance(text, str) and RUN_ID_RE.fullmatch(text) is not None


def check_run_id(text: object, where: str = "run id") -> str:
    """Give `text` when it is a run id of kpmobile's form; ConfigError (printed safely) otherwise."""
    if not is_run_id(text):
        raise ConfigError(f"{where} {ascii(text)} is not a kpmobile run id (YYYYMMDD-HHMMSS-xxxxxx)",
                          "copy the id from `kpmobile runs list`")
    assert isinstance(text, str)
    return text
