"""The plain check of `kpmobile bench` flag values (no pydantic) gives what the typed model gives, and
leaves every value it is not sure of to the model, whose message the user then reads."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kpmobile.sweep.flagvalues import FLAGS, RULES, TEXT_MAX, plain_settings
from kpmobile.sweep.settings import SweepSettings


def _texts() -> list[Any]:
    return ["a", "picodet-s-192", "é ü", "a b", "", "a" * TEXT_MAX, "a" * (TEXT_MAX + 1), "a\x1f", "a\x7f",
            "a\n", "\x00", 1, None, b"a"]


def _numbers(low: float | None, high: float | None) -> list[Any]:
    out: list[Any] = [0, 1, -1, 0.0, -0.0, 0.5, 1e-300, float("nan"), float("inf"), -float("inf"), True, False,
                      "1", "1.0", None]
    for edge in (low, high):
        if edge is not None:
            out += [edge, edge - 1, edge + 1, float(edge), float(edge) - 1e-9, float(edge) + 1e-9, 10**400]
    return out


def _samples(name: str) -> list[Any]:
    rule = RULES[name]
    if rule.kind is str:
        one = _texts()
    elif rule.kind is bool:
        one = [True, False, 0, 1, "true", None]
    else:
        one = _numbers(rule.low, rule.high)
    if not rule.many:
        return one
    return [[v] for v in one] + [[], [one[0]] * 1000, [one[0]] * 1001, (one[0],), one[0], [one[0], one[-1]]]


def _model(name: str, value: Any) -> dict[str, Any] | None:
    try:
        return SweepSettings.model_validate({name: value}).given()
    except ValidationError:
        return None


def test_every_flag_has_a_rule_and_a_field() -> None:
    assert set(RULES) == set(FLAGS)
    assert set(RULES) <= set(SweepSettings.model_fields)


@pytest.mark.parametrize("name", sorted(RULES))
def test_the_plain_check_gives_what_the_model_gives(name: str) -> None:
    plain_taken = 0
    for value in _samples(name):
        plain = plain_settings({name: value})
        if plain is not None:
            plain_taken += 1
            assert plain == _model(name, value), (name, value)  # never takes what the model refuses
    assert plain_taken >= 2  # the common values do skip the model


def test_one_unsure_value_sends_them_all_to_the_model() -> None:
    assert plain_settings({"threads": [1, 4], "warmup": 10}) == {"threads": [1, 4], "warmup": 10}
    assert plain_settings({"threads": [1, 4], "warmup": -1}) is None
    assert plain_settings({"threads": [1, 4], "profiles": ["kirin980"]}) is None  # not a flag's field
