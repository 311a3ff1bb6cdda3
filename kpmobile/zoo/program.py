"""Read the inputs and outputs of a Paddle `model.pdmodel` without importing paddle.

A `.pdmodel` is a serialized `ProgramDesc` protobuf (paddle/fluid/framework/framework.proto).
Only the few fields needed to name the feed/fetch variables and their shapes are decoded here,
with a minimal wire-format reader, so that the orchestrator can describe a user's model fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# framework.proto field numbers
_PROGRAM_BLOCKS = 1
_BLOCK_VARS, _BLOCK_OPS = 3, 4
_VAR_NAME, _VAR_TYPE = 1, 2
_VARTYPE_TYPE, _VARTYPE_LOD_TENSOR = 1, 3
_LOD_TENSOR_TENSOR = 1
_TENSOR_DATA_TYPE, _TENSOR_DIMS = 1, 2
_OP_INPUTS, _OP_OUTPUTS, _OP_TYPE, _OP_ATTRS = 1, 2, 3, 4
_OPVAR_PARAMETER, _OPVAR_ARGUMENTS = 1, 2
_ATTR_NAME, _ATTR_I = 1, 3

# VarType.Type values of the tensor element types
DTYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
          20: "uint8", 21: "int8", 22: "bfloat16"}


class ProgramFormatError(ValueError):
    """The file is not a readable Paddle ProgramDesc."""


@dataclass(frozen=True)
class ProgramVar:
    """A feed or fetch variable: its name, dims (-1 where dynamic) and element type."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ProgramIO:
    """The feed (inputs) and fetch (outputs) variables of a program, in feed/fetch column order."""

    inputs: tuple[ProgramVar, ...]
    outputs: tuple[ProgramVar, ...]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProgramFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProgramFormatError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Give (field number, wire type, value) for each field of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ProgramFormatError("truncated field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ProgramFormatError(f"unsupported wire type {wire}")
        if number == 0:
            raise ProgramFormatError("field number 0")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _sub(buf: bytes, number: int) -> list[bytes]:
    return [v for n, w, v in _fields(buf) if n == number and w == 2 and isinstance(v, bytes)]


def _int(buf: bytes, number: int, default: int = 0) -> int:
    for n, w, v in _fields(buf):
        if n == number and w == 0 and isinstance(v, int):
            return v
    return default


def _dims(tensor: bytes) -> tuple[int, ...]:
    dims: list[int] = []
    for n, w, v in _fields(tensor):
        if n != _TENSOR_DIMS:
            continue
        if w == 0 and isinstance(v, int):
            dims.append(_signed64(v))
        elif w == 2 and isinstance(v, bytes):  # packed
            pos = 0
            while pos < len(v):
                d, pos = _varint(v, pos)
                dims.append(_signed64(d))
    return tuple(dims)


def _var_shapes(block: bytes) -> dict[str, tuple[tuple[int, ...], str]]:
    shapes: dict[str, tuple[tuple[int, ...], str]] = {}
    for var in _sub(block, _BLOCK_VARS):
        names = _sub(var, _VAR_NAME)
        types = _sub(var, _VAR_TYPE)
        if not names or not types:
            continue
        lods = _sub(types[0], _VARTYPE_LOD_TENSOR)
        if not lods:
            continue
        tensors = _sub(lods[0], _LOD_TENSOR_TENSOR)
        if not tensors:
            continue
        dtype = DTYPES.get(_int(tensors[0], _TENSOR_DATA_TYPE, -1), "unknown")
        shapes[names[0].decode("utf-8", "replace")] = (_dims(tensors[0]), dtype)
    return shapes


def _op_var(op: bytes, number: int) -> list[str]:
    args: list[str] = []
    for var in _sub(op, number):
        args += [a.decode("utf-8", "replace") for a in _sub(var, _OPVAR_ARGUMENTS)]
    return args


def _col(op: bytes) -> int:
    for attr in _sub(op, _OP_ATTRS):
        names = _sub(attr, _ATTR_NAME)
        if names and names[0] == b"col":
            return _signed64(_int(attr, _ATTR_I))
    return 0


def parse_program(data: bytes) -> ProgramIO:
    """Give the feed and fetch variables of a serialized ProgramDesc."""
    try:
        blocks = _sub(data, _PROGRAM_BLOCKS)
        if not blocks:
            raise ProgramFormatError("no blocks")
        block = blocks[0]
        shapes = _var_shapes(block)
        feeds: list[tuple[int, str]] = []
        fetches: list[tuple[int, str]] = []
        for op in _sub(block, _BLOCK_OPS):
            kind = b"".join(_sub(op, _OP_TYPE))
            if kind == b"feed":
                feeds += [(_col(op), name) for name in _op_var(op, _OP_OUTPUTS)]
            elif kind == b"fetch":
                fetches += [(_col(op), name) for name in _op_var(op, _OP_INPUTS)]
    except (IndexError, UnicodeError) as exc:
        raise ProgramFormatError(str(exc)) from exc
    if not feeds:
        raise ProgramFormatError("no feed op")

    def as_vars(items: list[tuple[int, str]]) -> tuple[ProgramVar, ...]:
        out = []
        for _, name in sorted(items):
            shape, dtype = shapes.get(name, ((), "unknown"))
            out.append(ProgramVar(name, shape, dtype))
        return tuple(out)

    return ProgramIO(as_vars(feeds), as_vars(fetches))


def read_program_io(path: Path) -> ProgramIO:
    """Give the feed and fetch variables of a `model.pdmodel` file."""
    return parse_program(Path(path).read_bytes())
