"""Device helpers for stage 2's 16-bit epilogues (traced inline into generated kernels).

Stage 2 sums a token's topk slot rows. With a float16/bfloat16 output that goes either through
packed atomics (`buffer_atomic_pk_add_f16` / `_bf16`: two adjacent columns of one row per
instruction) or, in reduce mode, through plain per-slot stores summed by a host step.

A packed atomic needs two adjacent columns in one lane, but the 16x16 MFMA accumulator gives
each lane one column (4 rows). The accumulator therefore goes through a wave-private LDS
scratch tile: each lane stores its 4 values, then reads back a row's column pair. The scratch is
private to the wave and LDS operations of one wave complete in order, so no barrier is needed
(the emulator's LDS race check, which tracks the writing wave of every byte, agrees).
"""

from __future__ import annotations

import flydsl.expr as fx
from flydsl._mlir import ir
from flydsl._mlir.dialects import llvm, vector
from flydsl.expr import rocdl

ACC_TILE_BYTES = 16 * 16 * 4
"""One 16x16 float32 accumulator tile: the LDS scratch of one wave."""


def _value(x):
    return x.ir_value() if hasattr(x, "ir_value") else x


def lds_scratch(nbytes: int):
    """!llvm.ptr<3> to a static LDS allocation of `nbytes` bytes (one per kernel call site)."""
    return fx.to_llvm_ptr(fx.SharedAllocator().allocate(nbytes)._ptr)


def _lds_at(base, byte_offset):
    i8 = ir.IntegerType.get_signless(8)
    return llvm.getelementptr(base.type, base, [_value(byte_offset)], [-2147483648], i8, 0)


def stage_accumulator(scratch, tile_offset, acc, row_group, column) -> None:
    """Store this lane's 4 accumulator values (rows 4 * row_group + r, `column`) of one 16x16
    tile into the scratch tile at byte `tile_offset` of `scratch` (row-major, 16 float32 per row)."""
    values = fx.Vector(acc, (4,), fx.Float32)
    for r in fx.range_constexpr(4):
        offset = tile_offset + ((row_group * 4 + r) * 16 + column) * 4
        llvm.store(_value(values[r]), _lds_at(scratch, offset))


def column_pair(scratch, tile_offset, row, column):
    """(tile[row][column], tile[row][column + 1]) of the scratch tile at byte `tile_offset`, as
    two float32 (one 8-byte LDS read)."""
    f32x2 = ir.VectorType.get([2], ir.F32Type.get())
    pair = llvm.load(f32x2, _lds_at(scratch, tile_offset + (row * 16 + column) * 4))
    return fx.Vector(pair, (2,), fx.Float32)


def atomic_add_pair(first, second, out_rsrc, byte_offset, element_type) -> None:
    """out[byte_offset / 2 + {0, 1}] += (first, second), rounded to `element_type` (float16 or
    bfloat16) before the add: one buffer_atomic_pk_add_{f16,bf16} (byte_offset 4-aligned)."""
    lo = first.to(element_type).ir_value()
    hi = second.to(element_type).ir_value()
    pair = vector.from_elements(ir.VectorType.get([2], lo.type), [lo, hi])
    rocdl.raw_ptr_buffer_atomic_fadd(pair, out_rsrc, fx.Int32(byte_offset), fx.Int32(0))


def load_f32(rsrc, byte_offset):
    """One float32 per lane (a routing weight)."""
    f32 = ir.F32Type.get()
    return fx.Float32(rocdl.raw_ptr_buffer_load(f32, rsrc, byte_offset, fx.Int32(0), 0))
