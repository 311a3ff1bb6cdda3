"""SoC identity from getprop values, by the table in device_profiles/tables/socs.toml: one chip, one name.

A chip is filed under its part number, lower case (`sm8250`), whether the phone reports the part
number (Android 12+: ro.soc.model) or a board codename (`kona`); a codename shared by several
chips (`lito`) is never resolved alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.filememo import toml_data
from kpmobile.paths import PROFILES_DIR

SOCS_FILE = "tables/socs.toml"


@dataclass(frozen=True)
class PropRule:
    """One property that may name the chip."""

    key: str
    min_api: int | None = None
    accept: re.Pattern[str] | None = None
    known_only: bool = False


@dataclass(frozen=True)
class SocTable:
    """The identity table: chip and board properties, cleaning rules, shared codenames, aliases."""

    chip_props: tuple[PropRule, ...]
    board_props: tuple[PropRule, ...]
    generic: frozenset[str]
    rules: tuple[tuple[re.Pattern[str], str], ...]
    shared: dict[str, tuple[str, ...]]
    aliases: dict[str, str]  # any known name -> part number
    chip_like: re.Pattern[str] | None = None  # a cleaned value shaped like a chip name


@dataclass(frozen=True)
class SocId:
    """The chip a phone reports: `name` (part number when known), the `reported` value and its key."""

    name: str | None
    reported: str | None = None
    source: str | None = None
    warning: str | None = None


def _rule(entry: Mapping[str, Any]) -> PropRule:
    accept = entry.get("accept")
    return PropRule(str(entry["key"]), int(entry["min_api"]) if "min_api" in entry else None,
                    re.compile(str(accept)) if accept else None, bool(entry.get("known_only", False)))


def load_table(folder: Path = PROFILES_DIR, profile_socs: Iterable[tuple[str, ...]] = ()) -> SocTable:
    """Give the table of `folder`/socs.toml, with each profile's `soc` list as aliases of its first name."""
    path = folder / SOCS_FILE
    try:
        data = toml_data(path)  # tomli.TOMLDecodeError is a ValueError
        table = SocTable(
            chip_props=tuple(_rule(e) for e in data.get("chip_property", [])),
            board_props=tuple(_rule(e) for e in data.get("board_property", [])),
            generic=frozenset(str(g).lower() for g in data.get("generic", [])),
            rules=tuple((re.compile(str(r["pattern"])), str(r["to"])) for r in data.get("rule", [])),
            shared={str(k).lower(): tuple(str(c).lower() for c in v) for k, v in data.get("shared", {}).items()},
            aliases={},
            chip_like=re.compile(str(data["chip_like"])) if data.get("chip_like") else None,
        )
    except (OSError, KeyError, TypeError, ValueError, re.error) as exc:
        raise ConfigError(f"SoC table {path} is unreadable or malformed ({exc})",
                          "fix the file; compare it with the [[chip_property]] entries") from exc
    for names in profile_socs:
        if names:
            for name in names:
                table.aliases.setdefault(clean(table, name), clean(table, names[0]))
    return table


@lru_cache(maxsize=1)
def default_table() -> SocTable:
    """Give the table of device_profiles/ with the profiles' aliases (loaded once)."""
    from kpmobile.config import load_profiles

    return load_table(PROFILES_DIR, [p.soc for p in load_profiles().values()])


def clean(table: SocTable, value: str) -> str:
    """Give a reported chip name lower-cased and stripped of package and bin suffixes."""
    text = value.strip().lower()
    for pattern, to in table.rules:
        match = pattern.fullmatch(text)
        if match:
            text = match.expand(to)
    return text


def _canonical(table: SocTable, name: str) -> str:
    return table.aliases.get(name, name)


def _api(props: Mapping[str, str]) -> int | None:
    try:
        return int((props.get("ro.build.version.sdk") or "").strip())
    except ValueError:
        return None


def _candidates(table: SocTable, props: Mapping[str, str], rules: Iterable[PropRule]) -> Iterable[tuple[str, str, str]]:
    """Give (key, reported value, cleaned value) of each rule's property that may name a chip."""
    api = _api(props)
    for rule in rules:
        raw = (props.get(rule.key) or "").strip()
        if rule.min_api is not None and api is not None and api < rule.min_api:
            continue
        if rule.accept is not None and not rule.accept.search(raw.lower()):
            continue
        value = clean(table, raw)
        if value in table.generic or "\n" in value:
            continue
        if rule.known_only and not _chip_named(table, value):
            continue
        yield rule.key, raw, value


def _chip_named(table: SocTable, value: str) -> bool:
    """Tell whether a cleaned value names a chip: a known name, or shaped like one."""
    return value in table.aliases or bool(table.chip_like and table.chip_like.match(value))


def soc_from_hardware(hardware: str | None, table: SocTable | None = None) -> str | None:
    """Give the chip /proc/cpuinfo's "Hardware" line names ("Qualcomm Technologies, Inc SM8250"), or None."""
    table = table or default_table()
    value = clean(table, hardware or "")
    return _canonical(table, value) if value and _chip_named(table, value) else None


def identify_soc(props: Mapping[str, str], table: SocTable | None = None) -> SocId:
    """Give the chip a phone's properties name: chip properties first, then unshared codenames."""
    table = table or default_table()
    for key, raw, value in _candidates(table, props, table.chip_props):
        return SocId(_canonical(table, value), raw, key)
    shared: tuple[str, str] | None = None
    for key, raw, value in _candidates(table, props, table.board_props):
        if value in table.shared:
            shared = shared or (key, value)
            continue
        return SocId(_canonical(table, value), raw, key)
    if shared is not None:
        key, value = shared
        chips = ", ".join(table.shared[value])
        return SocId(value, value, key,
                     f"board codename '{value}' ({key}) names several chips ({chips}) and no property names "
                     "the chip; filed under the codename (ro.soc.model or ro.boot.platform_name would tell)")
    return SocId(None)
