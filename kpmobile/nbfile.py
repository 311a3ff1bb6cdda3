"""The header of a Paddle Lite `.nb` (optimized model) and its kernel tags: the one reader of that format.

Layout of a Lite 2.x naive-buffer model (lite/model_parser/model_parser.cc): u16 meta version,
char[16] opt version (NUL-terminated; opt leaves stray bytes after the NUL), u64 topology size,
the topology (a flatbuffers program whose kernel types are NUL-terminated strings tagged
`op/alias/target/precision/layout`, KernelBase::SerializeKernelType), then the parameters.

Pure stdlib, no kpmobile imports: the pushed `lite_runner` carries this module's source spliced
into it (see `kpmobile.runners.splice`); `zoo.convert` and `backends.engines.lite` import it.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field

# lite/api/paddle_place.h TargetType and PrecisionType, named as Lite's TargetToStr names targets
# (precisions in kpmobile's words: fp32, fp16, ...).
NB_TARGET_NAMES = {
    0: "unk", 1: "host", 2: "x86", 3: "cuda", 4: "arm", 5: "opencl", 6: "any", 7: "fpga", 8: "npu",
    9: "xpu", 10: "bm", 11: "mlu", 12: "rknpu", 13: "apu", 14: "huawei_ascend_npu",
    15: "imagination_nna", 16: "intel_fpga", 17: "metal", 18: "nnadapter",
}
NB_PRECISION_NAMES = {0: "unk", 1: "fp32", 2: "int8", 3: "int32", 4: "any", 5: "fp16", 6: "bool",
                      7: "int64", 8: "int16", 9: "uint8", 10: "fp64"}
NB_HEADER_BYTES = 2 + 16 + 8  # meta_version u16, opt_version char[16], topo_size u64
NB_KERNEL_TAG = re.compile(rb"([A-Za-z0-9_]+)/([A-Za-z0-9_]+)/(\d{1,2})/(\d{1,2})/(\d{1,2})\x00")

# NbFormatError kinds
NB_MISSING, NB_DIRECTORY, NB_NOT_NB, NB_OLD_FORMAT, NB_TRUNCATED, NB_NO_KERNELS = (
    "missing", "directory", "not-nb", "old-format", "truncated", "no-kernels")


class NbFormatError(ValueError):
    """A file that is not a usable `.nb`; `kind` says why (NB_MISSING, NB_TRUNCATED, ...)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class NbInfo:
    """What the header of an optimized .nb says (equality: meta version, opt version, topology size, targets)."""

    meta_version: int
    opt_version: str
    topo_size: int
    targets: tuple[str, ...]  # kernel targets, sorted: ("host", "x86"), ("arm", "host"), ...
    precisions: tuple[str, ...] = field(default=(), compare=False)  # sorted: ("any", "fp32"), ...
    kernels: int = field(default=0, compare=False)  # kernel tags in the topology
    ops: tuple[tuple[str, tuple[str, ...]], ...] = field(default=(), compare=False)  # (target, sorted ops)


def read_nb(path: str) -> NbInfo:
    """Give the header facts of a .nb file; NbFormatError when it is not a usable .nb."""
    if not os.path.exists(path):
        raise NbFormatError(f"model file not found: {path}", NB_MISSING)
    if os.path.isdir(path):
        raise NbFormatError(f"{path} is a directory, not an optimized .nb file", NB_DIRECTORY)
    with open(path, "rb") as fh:
        head = fh.read(NB_HEADER_BYTES)
        size = os.fstat(fh.fileno()).st_size
        meta_version, opt_version, topo_size = _check_head(path, head, size)
        topology = fh.read(topo_size)
    return nb_info_of(path, meta_version, opt_version, topology)


def _check_head(path: str, head: bytes, size: int) -> tuple[int, str, int]:
    """Give (meta version, opt version, topology size) of a header; NbFormatError if it is not one."""
    if len(head) < NB_HEADER_BYTES:
        raise NbFormatError(f"not a Paddle Lite .nb model: {path} is {size} bytes, shorter than "
                            f"the {NB_HEADER_BYTES}-byte header", NB_NOT_NB)
    meta_version, raw_version, topo_size = struct.unpack_from("<H16sQ", head, 0)
    opt_version = raw_version.split(b"\x00", 1)[0]
    if meta_version == 0:
        raise NbFormatError(f"{path} uses the naive-buffer format of opt before v2.7 (meta_version 0): "
                            "convert it again with this paddlelite's opt", NB_OLD_FORMAT)
    if meta_version not in (1, 2) or not re.fullmatch(rb"[\x21-\x7e]{1,16}", opt_version):
        raise NbFormatError(f"not a Paddle Lite .nb model: {path} has no opt header "
                            f"(meta_version {meta_version}, first bytes {head[:8].hex()})", NB_NOT_NB)
    if NB_HEADER_BYTES + topo_size > size:
        raise NbFormatError(f"{path} is truncated: its topology needs {NB_HEADER_BYTES + topo_size} bytes, "
                            f"the file has {size}", NB_TRUNCATED)
    return meta_version, opt_version.decode("ascii"), topo_size


def nb_info_of(path: str, meta_version: int, opt_version: str, topology: bytes) -> NbInfo:
    """Give the NbInfo of a topology's kernel tags; NbFormatError when it has none."""
    tags = NB_KERNEL_TAG.findall(topology)
    if not tags:
        raise NbFormatError(f"{path} has no kernel tags in its topology: not an optimized .nb, or corrupt",
                            NB_NO_KERNELS)
    ops: dict[str, set[str]] = {}
    for op, _alias, target, _precision, _layout in tags:
        ops.setdefault(NB_TARGET_NAMES.get(int(target), f"target{int(target)}"), set()).add(op.decode())
    precisions = {NB_PRECISION_NAMES.get(int(p), f"precision{int(p)}") for _, _, _, p, _ in tags}
    return NbInfo(meta_version, opt_version, len(topology), tuple(sorted(ops)), tuple(sorted(precisions)),
                  len(tags), tuple((t, tuple(sorted(names))) for t, names in sorted(ops.items())))
