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


def validate(model: type[M], data: Any, where: str, hint: str) -> M:
    """Give `data` as `model`; ConfigError "WHERE: FIELD: PROBLEM (got VALUE); HINT" otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {first_problem(exc)}", hint) from None


def first_problem(exc: ValidationError) -> str:
    """Give the first error of a ValidationError as "field: message (got value)", printable as is."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
    got = ascii(err.get("input"))
    if len(got) > 60:
        got = got[:57] + "..."
    return f"{loc}: {err.get('msg', 'invalid')} (got {got})"
