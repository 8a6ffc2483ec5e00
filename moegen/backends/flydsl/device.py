"""Device helpers shared by every generated FlyDSL kernel module (traced inline into kernels).

Generated modules keep only what differs per variant (tiles, addressing, the MFMA table of
their dtype); the buffer loads, the MFMA sub-tile loop and the arch lookup live here once.
"""

from __future__ import annotations

from typing import Mapping

import flydsl.expr as fx
from flydsl._mlir import ir
from flydsl._mlir.dialects import vector
from flydsl.expr import rocdl
from flydsl.runtime.device import get_rocm_arch

from moegen.core.vocabulary import ROUTING_BYTES, Mfma

LOG2_E = 1.4426950408889634


def target_mfma(by_arch: Mapping[str, Mfma], variant: str) -> Mfma:
    """The MFMA of the arch being compiled for (FLYDSL_GPU_ARCH), or a clear error."""
    arch = get_rocm_arch()
    if arch not in by_arch:
        raise ValueError(
            f"{variant} is declared for {sorted(by_arch)}, not for the target arch {arch!r}; "
            "set FLYDSL_GPU_ARCH (and ARCH) to a declared arch or add it in variants.yaml"
        )
    return by_arch[arch]


def buffer_rsrc(ptr):
    """Global pointer -> raw buffer resource (num_records 0xFFFFFFFF: offsets are not range-checked)."""
    return rocdl.get_buffer_rsrc(rocdl.make_buffer_ptr(ptr))


def load_dwords(rsrc, byte_offset, dwords: int):
    """One buffer_load of `dwords` consecutive dwords at a 32-bit per-lane byte offset."""
    i32 = ir.IntegerType.get_signless(32)
    return rocdl.raw_ptr_buffer_load(
        ir.VectorType.get([dwords], i32), rsrc, byte_offset, fx.Int32(0), 0
    )


def load_i32(rsrc, byte_offset):
    """One dword per lane (a routing entry)."""
    i32 = ir.IntegerType.get_signless(32)
    return fx.Int32(rocdl.raw_ptr_buffer_load(i32, rsrc, byte_offset, fx.Int32(0), 0))


def load_operand(rsrc, byte_offset, mfma: Mfma, element_bits: int):
    """This lane's `mfma.width` consecutive K elements of one A or B row, typed for the MFMA."""
    raw = load_dwords(rsrc, byte_offset, mfma.width * element_bits // 32)
    return vector.bitcast(ir.VectorType.get([mfma.width], ir.Type.parse(mfma.operand)), raw)


def load_row_info(rsrc, first_row):
    """The 4 consecutive i32 entries of a routing tensor for the 4 accumulator rows of this lane."""
    return fx.Vector(load_dwords(rsrc, first_row * ROUTING_BYTES, 4), (4,), fx.Int32)


def zero_acc():
    return fx.full((4,), 0.0, fx.Float32)


def mfma_tiles(mfma: Mfma, a: list, b: list, accs: list, n_subtiles: int) -> list:
    """accs[mi * n_subtiles + ni] += a[mi] . b[ni]^T for every (M subtile, N subtile) pair."""
    f32x4 = ir.VectorType.get([4], ir.F32Type.get())
    return [
        mfma.op(f32x4, [a[i // n_subtiles], b[i % n_subtiles], acc]) for i, acc in enumerate(accs)
    ]


def silu(x):
    """x * sigmoid(x) in f32 from the hardware exp2/rcp (fx.exp would call ocml, which needs device bitcode)."""
    f32 = ir.F32Type.get()
    e = fx.Float32(rocdl.exp2(f32, (-x * LOG2_E).ir_value()))
    return x * fx.Float32(rocdl.rcp(f32, (1.0 + e).ir_value()))
