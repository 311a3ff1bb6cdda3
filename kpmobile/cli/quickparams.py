"""Command-line values of plain types without pydantic: a fifth of a second less start-up.

Typer (0.2x) coerces every option value through a pydantic TypeAdapter, so any command that is
given, or defaults to, a non-flag value imports pydantic and builds adapters. kpmobile's options
are plain strings, flags, whole numbers, decimals, paths and lists of those. `install()` wraps typer's
coercion: a well-formed value of such a type is converted here; anything else (a malformed or
out-of-range value, an enum, a file) goes to typer's own adapter, so its checks and its error
messages stay exactly typer's. When typer's internals are not the expected ones, nothing is wrapped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_installed = False


class _Slow(Exception):
    """The value needs typer's own coercion."""


def quick_value(annotation: Any, info: Any, value: Any, path: Any = None) -> Any:
    """Give `value` converted to `annotation`, or raise _Slow when typer must decide; `path(Path)`
    makes typer's own checks of a path (exists, readable, ...), which need no pydantic."""
    if get_origin(annotation) is list and isinstance(value, (list, tuple)):
        (item,) = get_args(annotation)
        return [quick_value(item, info, v, path) for v in value]
    if annotation is str and isinstance(value, str):
        return value
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is int and isinstance(value, str) and _INT.fullmatch(value):
        return _in_range(int(value), info)
    if annotation is float and isinstance(value, str) and _FLOAT.fullmatch(value):
        return _in_range(float(value), info)
    if annotation is Path and isinstance(value, (str, Path)) and path is not None and not _path_options(info):
        return path(Path(value))
    raise _Slow


def _in_range(number: float, info: Any) -> Any:
    if getattr(info, "clamp", False):
        raise _Slow
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if (low is not None and number < low) or (high is not None and number > high):
        raise _Slow  # typer says how it is out of range
    return number


def _path_options(info: Any) -> bool:
    """Tell whether a path option asks for what only typer's adapter gives (dash, resolve, path_type)."""
    return bool(getattr(info, "allow_dash", False) or getattr(info, "resolve_path", False)
                or getattr(info, "path_type", None) is not None)


def _simple(annotation: Any, info: Any) -> bool:
    if getattr(info, "parser", None) is not None:
        return False
    if get_origin(annotation) is list:
        args = get_args(annotation)
        return len(args) == 1 and _simple(args[0], info)
    return annotation in (str, bool, int, float, Path)


def install() -> bool:
    """Give True once typer's value coercion tries the quick path first (idempotent)."""
    global _installed
    if _installed:
        return True
    try:
        from typer import _coercion, _param_types, core
    except ImportError:
        return False
    runtime_param = getattr(_coercion, "RuntimeParam", None)
    original = getattr(core, "build_runtime_param", None)
    check_path = getattr(_param_types, "coerce_cli_path", None)
    if runtime_param is None or original is None or check_path is None:
        return False
    quick_class = _quick_class(runtime_param, original, check_path)

    def build(descriptor: Any) -> Any:
        if getattr(descriptor, "file_annotation", None) is None and _simple(descriptor.annotation,
                                                                            descriptor.parameter_info):
            return quick_class(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation,
                               descriptor=descriptor)
        return original(descriptor)

    core.build_runtime_param = build
    _installed = True
    return True


def _quick_class(base: Any, original: Any, check_path: Any) -> Any:
    """Give the RuntimeParam subclass that converts quickly and falls back to typer's own."""
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class QuickRuntimeParam(base):  # type: ignore[misc, valid-type]
        descriptor: Any = None
        _slow: list[Any] = field(default_factory=list, compare=False, repr=False)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            def path(value: Path) -> Any:
                return check_path(value, self.parameter_info, path_type=Path, param=param, ctx=ctx)

            try:
                return quick_value(self.annotation, self.parameter_info, value, path)
            except _Slow:
                if not self._slow:
                    self._slow.append(original(self.descriptor))
                return self._slow[0]._coerce_value(value, param=param, ctx=ctx)

    return QuickRuntimeParam
