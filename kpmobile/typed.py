"""Typed validation of outside input (sweep files, flags, imported runs) with pydantic v2.

pydantic is imported here only. Models subclass `Strict`: no coercion ("14" is not 14, "false"
is not False), no NaN or infinity, no unknown keys; `validate` turns the first problem into one
ConfigError line naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kpmobile.errors import ConfigError

__all__ = ["Field", "Name", "Strict", "StrictOpen", "validate"]

M = TypeVar("M", bound=BaseModel)

# Names that reach paths and shell words (models, devices, serials, backends): no '/', no spaces,
# no shell metacharacters, never starting with '.' or '-'.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._:@+=-]{0,199}$")]


class Strict(BaseModel):
    """A model that refuses coercion, non-finite numbers and unknown keys."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)


class StrictOpen(BaseModel):
    """Like Strict, but keys it does not name are kept as they are (a plan's free-form parts)."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow", frozen=True)


def validate(model: type[M], data: Any, where: str, hint: str, names: dict[str, str] | None = None) -> M:
    """Give `data` as `model`; ConfigError "WHERE: FIELD: PROBLEM (got VALUE); HINT" otherwise.

    `names` renames a top-level field as the user wrote it (a flag); "{field}" in `hint` is that name.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, problem = first_problem(exc, names or {})
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{field}: {problem}", hint.replace("{field}", field)) from None


def first_problem(exc: ValidationError, names: dict[str, str] | None = None) -> tuple[str, str]:
    """Give the first error of a ValidationError as (field, "message (got value)"), printable as is."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ())] or ["value"]
    loc[0] = (names or {}).get(loc[0], loc[0])
    got = ascii(err.get("input"))
    if len(got) > 60:
        got = got[:57] + "..."
    return ".".join(loc), f"{err.get('msg', 'invalid')} (got {got})"
