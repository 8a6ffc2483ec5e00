"""LLVM-dialect types and value representations.

A value is a numpy array [lanes, *elem_shape], or 0-d/elem-shaped when uniform over the batch.
Integers are stored unsigned and wrap; signed ops use `signed()` views. bf16 and fp8 values are
kept as bit patterns (uint16 / uint8), f16 as numpy float16, i128 and the buffer resource
`!llvm.ptr<8>` as 4 little-endian dwords, LDS pointers (`!llvm.ptr<3>`) as uint32 byte
addresses, other pointers as uint64. Structs are tuples of values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import EmulatorError

_FLOATS = {"f16": np.float16, "f32": np.float32, "f64": np.float64}
_UINT = {1: np.bool_, 8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
_SINT = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


@dataclass(frozen=True)
class Ty:
    """A parsed type. kind: i (integer), f (f16/f32/f64), bf16, f8, v (vector), a (array),
    p (pointer), s (struct)."""

    text: str
    kind: str
    np: type | None
    eshape: tuple = ()
    size: int = 0  # bytes in memory
    bits: int = 0
    elem: "Ty | None" = None
    n: int = 0
    aspace: int = 0
    fields: tuple = ()

    @property
    def scalar(self) -> "Ty":
        """The element type of a vector, else the type itself."""
        return self.elem if self.kind == "v" else self

    def __repr__(self) -> str:
        return self.text


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "<(" and 1 or (-1 if ch in ">)" else 0)
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return out + ([cur.strip()] if cur.strip() else [])


@lru_cache(maxsize=None)
def parse_type(text: str) -> Ty:
    """Parse the textual form of an LLVM-dialect type."""
    s = str(text).strip()
    body = s[len("!llvm.") :] if s.startswith("!llvm.") else s
    if m := re.fullmatch(r"i(\d+)", body):
        bits = int(m.group(1))
        if bits == 128:
            return Ty(s, "i", np.uint32, (4,), 16, 128)
        if bits not in _UINT:
            raise EmulatorError(f"unsupported integer type {s}")
        return Ty(s, "i", _UINT[bits], (), max(1, bits // 8), bits)
    if body in _FLOATS:
        size = np.dtype(_FLOATS[body]).itemsize
        return Ty(s, "f", _FLOATS[body], (), size, 8 * size)
    if body == "bf16":
        return Ty(s, "bf16", np.uint16, (), 2, 16)
    if body.startswith("f8"):
        return Ty(s, "f8", np.uint8, (), 1, 8)
    if m := re.fullmatch(r"vector<(\d+)x(.+)>", body):
        e, n = parse_type(m.group(2)), int(m.group(1))
        return Ty(s, "v", e.np, (n,) + e.eshape, e.size * n, e.bits * n, e, n)
    if m := re.fullmatch(r"array<(\d+)\s*x\s*(.+)>", body):
        e, n = parse_type(m.group(2)), int(m.group(1))
        return Ty(s, "a", e.np, (n,) + e.eshape, e.size * n, e.bits * n, e, n)
    if body == "ptr" or body.startswith("ptr<"):
        aspace = int(body[4:-1]) if body.startswith("ptr<") else 0
        if aspace == 8:  # buffer resource: 128 bits, kept as its 4 dwords
            return Ty(s, "p", np.uint32, (4,), 16, 128, aspace=8)
        if aspace in (3, 5):  # LDS / private: 32-bit addresses
            return Ty(s, "p", np.uint32, (), 4, 32, aspace=aspace)
        return Ty(s, "p", np.uint64, (), 8, 64, aspace=aspace)
    if body.startswith("struct<"):
        inner = body[len("struct<") : -1].strip()
        packed = inner.startswith("packed")
        inner = inner[len("packed") :].strip() if packed else inner
        fields = tuple(parse_type(x) for x in _split_top(inner[1:-1]))
        size = 0
        for f in fields:
            size = size if packed else -(-size // max(f.size, 1)) * max(f.size, 1)
            size += f.size
        return Ty(s, "s", None, (), size, fields=fields)
    raise EmulatorError(f"unsupported type {s}")


def signed(x: np.ndarray) -> np.ndarray:
    """Signed view of an unsigned-stored integer array (i1 true -> -1)."""
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return -x.astype(np.int8)
    return x.view(_SINT[x.dtype.itemsize * 8])


def signed_dtype(t: Ty):
    return _SINT[np.dtype(t.np).itemsize * 8]


def zero_of(t: Ty):
    if t.kind == "s":
        return tuple(zero_of(f) for f in t.fields)
    return np.zeros(t.eshape, t.np)
