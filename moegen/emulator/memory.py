"""Device memory as the emulator sees it.

* `Memory`: global memory = registered host allocations (torch storages), accessed in place.
  Every active lane's access is checked against the allocation table before any byte moves.
* Buffer resources (V#): decoded from their 4 dwords like gfx9 hardware; `buffer_addresses`
  implements the raw-buffer rule (voffset mod 2^32, soffset added without wrap, per-dword
  num_records range check that includes soffset); see the comment above `buffer_offsets`.
(LDS: lds.py.)
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import EmulatorError, IllegalAddress

U32 = np.uint64(0xFFFFFFFF)


@dataclass
class Allocation:
    base: int
    size: int
    name: str
    view: np.ndarray  # uint8 view of the host bytes


class Memory:
    """Registered allocations, sorted by base address."""

    def __init__(self) -> None:
        self.allocs: list[Allocation] = []
        self._bases = np.zeros(0, np.uint64)
        self._ends = np.zeros(0, np.uint64)

    def add(self, base: int, size: int, name: str) -> None:
        if any(a.base == base and a.size == size for a in self.allocs):
            return
        view = (
            np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(base))
            if size
            else np.zeros(0, np.uint8)
        )
        self.allocs.append(Allocation(int(base), int(size), name, view))
        self.allocs.sort(key=lambda a: a.base)
        self._bases = np.array([a.base for a in self.allocs], np.uint64)
        self._ends = np.array([a.base + a.size for a in self.allocs], np.uint64)

    def add_tensor(self, tensor, name: str) -> None:
        """Register the whole storage of a CPU torch tensor."""
        st = tensor.untyped_storage()
        self.add(st.data_ptr(), st.nbytes(), name)

    def nearest(self, addr: int) -> str:
        if not self.allocs:
            return "no allocations registered"
        a = min(
            self.allocs,
            key=lambda al: min(abs(addr - al.base), abs(addr - al.base - al.size)),
        )
        return f"nearest allocation '{a.name}' [0x{a.base:x}, 0x{a.base + a.size:x}) (addr - base = {addr - a.base:+d})"

    def locate(
        self,
        addr: np.ndarray,
        nbytes: int,
        active: np.ndarray,
        what: str,
        where: Callable[[int], str],
    ):
        """Allocation index per access (-1 where inactive); raises IllegalAddress on any
        active access that is not entirely inside one allocation."""
        i = np.searchsorted(self._bases, addr, side="right").astype(np.int64) - 1
        ok = (
            (i >= 0) & (addr + np.uint64(nbytes) <= self._ends[np.maximum(i, 0)])
            if self.allocs
            else np.zeros(addr.shape, bool)
        )
        bad = active & ~ok
        if bad.any():
            k = int(np.nonzero(bad)[0][0])
            a = int(addr[k])
            raise IllegalAddress(
                f"illegal address in {what}: {int(bad.sum())} active access(es) outside every allocation; "
                f"first: {where(k)} addr=0x{a:x} size={nbytes}; {self.nearest(a)}"
            )
        return np.where(active, i, -1)

    def read(self, addr, nbytes: int, active, what: str, where: Callable[[int], str]) -> np.ndarray:
        """[n, nbytes] uint8 (zeros where inactive)."""
        addr = np.asarray(addr, np.uint64).reshape(-1)
        active = np.broadcast_to(active, addr.shape)
        out = np.zeros((addr.size, nbytes), np.uint8)
        idx = self.locate(addr, nbytes, active, what, where)
        ar = np.arange(nbytes, dtype=np.uint64)
        for k in np.unique(idx[idx >= 0]):
            a = self.allocs[k]
            sel = idx == k
            out[sel] = a.view[(addr[sel] - np.uint64(a.base))[:, None] + ar]
        return out

    def write(self, addr, data: np.ndarray, active, what: str, where: Callable[[int], str]) -> None:
        """data: [n, nbytes] uint8. Every access is checked before any byte is written."""
        addr = np.asarray(addr, np.uint64).reshape(-1)
        active = np.broadcast_to(active, addr.shape)
        nbytes = data.shape[-1]
        idx = self.locate(addr, nbytes, active, what, where)
        ar = np.arange(nbytes, dtype=np.uint64)
        for k in np.unique(idx[idx >= 0]):
            a = self.allocs[k]
            sel = idx == k
            a.view[(addr[sel] - np.uint64(a.base))[:, None] + ar] = data[sel]


# ---- buffer resources -------------------------------------------------------------------


def make_rsrc(base, stride, num_records, flags) -> np.ndarray:
    """The 4 dwords of a V# as the AMDGPU lowering of rocdl.make.buffer.rsrc builds them:
    w0 = base[31:0], w1 = base[47:32] | stride << 16, w2 = num_records, w3 = flags."""
    base = np.asarray(base, np.uint64)
    w0 = (base & U32).astype(np.uint32)
    w1 = ((base >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.uint32) | (
        np.asarray(stride).astype(np.uint32) << np.uint32(16)
    )
    w2 = np.asarray(num_records).astype(np.uint64).astype(np.uint32)
    w3 = np.asarray(flags).astype(np.uint32)
    shape = np.broadcast_shapes(w0.shape, w1.shape, w2.shape, w3.shape)
    return np.stack([np.broadcast_to(w, shape) for w in (w0, w1, w2, w3)], -1)


def decode_rsrc(r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, stride, num_records) of V# dwords [..., 4]."""
    r = np.asarray(r, np.uint32)
    base = r[..., 0].astype(np.uint64) | (
        (r[..., 1] & np.uint32(0xFFFF)).astype(np.uint64) << np.uint64(32)
    )
    stride = (r[..., 1] >> np.uint32(16)) & np.uint32(0x3FFF)
    return base, stride, r[..., 2].astype(np.uint64)


# The raw-buffer (stride 0) address rule of gfx9 hardware, as AMD's own emulator (rocjitsu,
# shared/addr_calc_buffer.h, corrected to follow gfx950 hardware) computes it:
#     offset   = ((voffset + inst_offset) mod 2^32) + soffset      (the soffset add does not wrap)
#     address  = base + offset
#     in range = offset + access bytes <= num_records               (soffset included)
# LLVM AMDGPUUsage.rst (buffer range checking) describes the same check. The check is applied
# per dword of a multi-dword access (a partially out-of-range dwordx4 keeps its in-range
# dwords: CDNA4 ISA 9.1.5.1 note 4, as cited in triton-lang/triton#9855). In the MLIR the voffset operand already includes any constant the backend
# folds into inst_offset, and the i32 add that formed it wrapped mod 2^32: that is the wrapped
# reading of `voffset + inst_offset`, which the emulator executes; see `ambiguous_lanes`.


MUBUF_MAX_INST_OFFSET = 4095  # 12-bit unsigned offset field of MUBUF on gfx9 (gfx942/gfx950)


def buffer_offsets(voffset, soffset) -> np.ndarray:
    """Byte offsets (uint64) of raw buffer accesses: voffset (already `voffset + inst_offset`
    mod 2^32) plus soffset, both unsigned 32-bit, added in 64 bits (no wrap at 2^32)."""
    vo = np.asarray(voffset, np.uint32).astype(np.uint64)
    so = np.asarray(soffset, np.uint32).astype(np.uint64)
    return vo + so


def in_range(offset, nbytes: int, num_records) -> np.ndarray:
    """Range check of a raw buffer access of `nbytes` at byte `offset` (soffset included):
    in range iff offset + nbytes <= num_records. Out of range: loads return 0, stores and
    atomics do nothing."""
    return np.asarray(offset, np.uint64) + np.uint64(nbytes) <= np.asarray(num_records, np.uint64)


def ambiguous_lanes(voffset, addend: int) -> np.ndarray:
    """Lanes where `voffset = (x + addend) mod 2^32` carried past 2^32 within what the backend
    can fold into inst_offset, so the hardware result depends on whether `voffset +
    inst_offset` wraps (disputed between sources). The backend folds at most the 12-bit MUBUF
    offset field (<= 4095) of a constant addend and keeps the rest in the VALU add (which does
    wrap), so the carry may come from the instruction only when the wrapped voffset is below
    min(addend, 4096)."""
    if not addend:
        return np.zeros(np.shape(voffset), bool)
    return np.asarray(voffset, np.uint32) < np.uint32(min(addend, MUBUF_MAX_INST_OFFSET + 1))


def buffer_addresses(r, voffset, soffset, size: int, lanes: int):
    """Raw buffer (stride 0) addressing, per lane and per dword chunk j of the access:
        address  = base + offset + 4j,  in range = offset + 4j + 4 <= num_records
    with offset = buffer_offsets(voffset, soffset). Returns (addr [L, nchunks] uint64,
    in_range [L, nchunks] bool, chunk bytes, offset [L] uint64)."""
    base, stride, nrec = decode_rsrc(r)
    if np.any(stride != 0):
        raise EmulatorError("buffer resource with stride != 0 (structured buffer) is not modelled")
    chunk = min(4, size)
    j = np.arange(size // chunk, dtype=np.uint64) * np.uint64(chunk)
    off = np.broadcast_to(buffer_offsets(voffset, soffset), (lanes,))
    addr = np.broadcast_to(base, (lanes,))[:, None] + off[:, None] + j[None, :]
    ok = in_range(off[:, None] + j[None, :], chunk, np.broadcast_to(nrec, (lanes,))[:, None])
    return addr, ok, chunk, off


def describe_rsrc(r) -> str:
    base, stride, nrec = decode_rsrc(r)
    return f"V#.base=0x{int(base):x} stride={int(stride)} num_records=0x{int(nrec):x} flags=0x{int(np.asarray(r)[3]):x}"
