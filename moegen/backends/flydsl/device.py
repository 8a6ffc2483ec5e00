"""Device helpers shared by every generated FlyDSL kernel module (traced inline into kernels).

Generated modules keep only what differs per variant (tiles, addressing, the MFMA table of
their dtype); the buffer loads, the MFMA sub-tile loop and the arch lookup live here once.
"""

from __future__ import annotations

from typing import Mapping

import flydsl.expr as fx
import numpy as np
from flydsl._mlir import ir
from flydsl._mlir.dialects import arith, llvm, vector
from flydsl.expr import rocdl
from flydsl.runtime.device import get_rocm_arch

from moegen.backends.flydsl.limits import OPERAND_TYPE_BITS
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


# Buffer-load cache policy (the instruction's aux bits): on gfx942/gfx950 bit 1 is `nt`
# (non-temporal: stream through the caches). Weights are read once per M-block and are far
# larger than the caches; activations are re-read by every N-block and stay cached.
CACHE_DEFAULT = 0
CACHE_NONTEMPORAL = 2


def load_dwords(rsrc, byte_offset, dwords: int, cache: int = CACHE_DEFAULT):
    """One buffer_load of `dwords` consecutive dwords at a 32-bit per-lane byte offset."""
    i32 = ir.IntegerType.get_signless(32)
    return rocdl.raw_ptr_buffer_load(
        ir.VectorType.get([dwords], i32), rsrc, byte_offset, fx.Int32(0), cache
    )


def load_i32(rsrc, byte_offset):
    """One dword per lane (a routing entry)."""
    i32 = ir.IntegerType.get_signless(32)
    return fx.Int32(rocdl.raw_ptr_buffer_load(i32, rsrc, byte_offset, fx.Int32(0), 0))


def load_operand(rsrc, byte_offset, mfma: Mfma, element_bits: int):
    """This lane's `mfma.width` consecutive K elements of one A or B row, typed for the MFMA."""
    raw = load_dwords(rsrc, byte_offset, mfma.width * element_bits // 32)
    return vector.bitcast(ir.VectorType.get([mfma.width], ir.Type.parse(mfma.operand)), raw)


def operand_slices(raw, mfma: Mfma, element_bits: int) -> list:
    """Split one lane's loaded dword vector into consecutive MFMA operands of `mfma.width`
    elements of `mfma.operand` each (a 16-byte load of 16-bit values feeds two 16x16x16 or one
    16x16x32 MFMA; of 8-bit values, two 16x16x32 fp8 MFMAs, 8 bytes each as one i64).
    `element_bits` is the stored element width, which the operand vector must pack whole."""
    dwords = ir.VectorType(raw.type).shape[0]
    op_bits = mfma.width * OPERAND_TYPE_BITS[mfma.operand]
    assert op_bits % element_bits == 0 and op_bits % 32 == 0, (mfma, element_bits)
    per_op = op_bits // 32
    elem = ir.Type.parse(mfma.operand)
    scalar = mfma.width == 1  # one scalar operand (8 fp8 bytes as an i64), not a vector
    op_type = elem if scalar else ir.VectorType.get([mfma.width], elem)
    cast = llvm.bitcast if scalar else vector.bitcast
    if per_op == dwords:
        return [cast(op_type, raw)]
    part = ir.VectorType.get([per_op], ir.IntegerType.get_signless(32))
    return [
        cast(op_type, vector.extract_strided_slice(part, raw, [p * per_op], [per_op], [1]))
        for p in range(dwords // per_op)
    ]


def load_scale(rsrc, index):
    """One float32 scale per lane: element `index` (a 32-bit element offset) of a scale tensor."""
    f32 = ir.F32Type.get()
    return fx.Float32(rocdl.raw_ptr_buffer_load(f32, rsrc, index * 4, fx.Int32(0), 0))


def load_group_scale(rsrc, index, cache: int = CACHE_DEFAULT):
    """One bfloat16 per-group weight scale per lane (element `index`, a 32-bit element offset),
    kept bf16: dequant_int4 widens it where it is used, so a prefetched scale is not waited
    for at its load (a widening right after the load made the compiler wait there)."""
    return rocdl.raw_ptr_buffer_load(ir.BF16Type.get(), rsrc, index * 2, fx.Int32(0), cache)


# A packed int4 dword holds 8 consecutive K values, value i in bits [4i, 4i + 4) (two's
# complement; plain packing, low nibble first): shifting left by 28 - 4i puts value i's sign
# bit at bit 31, and the arithmetic shift right by 28 sign-extends it.
_INT4_SHIFTS = [28 - 4 * i for i in range(8)]


def dequant_int4(raw, dword: int, scale, element: str = "bf16"):
    """element(int4 value * scale) of the 8 values in dword `dword` of one lane's loaded weight
    vector, in K order, as 4 dwords (pairs of the 16-bit `element` type, the activations' MLIR
    type: bf16 or f16; the lower K in the low half): the same K order as a 16-byte LDS read of 8
    activations. `scale` is the group's bf16 scale (load_group_scale); value * scale is exact
    in f32 (4 x 8 significant bits), so the one rounding is the final round-to-nearest-even to
    `element`."""
    i32, f32 = ir.IntegerType.get_signless(32), ir.F32Type.get()
    scale = arith.extf(f32, _ir(scale))
    v8i, v8f = ir.VectorType.get([8], i32), ir.VectorType.get([8], f32)
    word = vector.broadcast(v8i, vector.extract(raw, [], [dword]))
    shifts = arith.constant(
        v8i, ir.DenseElementsAttr.get(np.array(_INT4_SHIFTS, dtype=np.int32), type=v8i)
    )
    sign = arith.constant(v8i, ir.DenseElementsAttr.get_splat(v8i, ir.IntegerAttr.get(i32, 28)))
    values = arith.shrsi(arith.shli(word, shifts), sign)
    scaled = arith.mulf(arith.sitofp(v8f, values), vector.broadcast(v8f, _ir(scale)))
    rounded = arith.truncf(ir.VectorType.get([8], ir.Type.parse(element)), scaled)
    return vector.bitcast(ir.VectorType.get([4], i32), rounded)


# A "split_nibbles" dword (moegen.runtime.quant) holds 8 consecutive K values v0..v7 of one row:
# byte j holds v_j in its low nibble and v_{j+4} in its high nibble (upstream's W4A8 packing).
_LOW_NIBBLES = 0x0F0F0F0F
_NIBBLE_SIGNS = 0x08080808
_SIGN_FILL = 0x1E  # a byte's 0x08 * 0x1E = 0xF0: its sign bit copied into bits 4-7, no carry out


def unpack_int4_i8(raw):
    """The int8 values of one lane's "split_nibbles" int4 load `raw` (d dwords of 8 values):
    2d dwords of 4 sign-extended int8 each, in K order (dword 2i = v0..v3 of raw dword i, the
    low nibbles; 2i + 1 = v4..v7, the high ones): the bytes an int8 weight load of the same
    K would hold, for the i8 MFMA. Per dword: (n & 0xF) | (n & 8) * 0x1E sign-extends each
    nibble n in place (upstream FlyDSL's 7-op unpack); the products stay inside their bytes."""
    i32 = ir.IntegerType.get_signless(32)
    vec = ir.VectorType(raw.type)
    dwords = vec.shape[0]

    def splat(value):
        return arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, ir.IntegerAttr.get(i32, value)))

    def extend(nibbles):
        low = arith.andi(nibbles, splat(_LOW_NIBBLES))
        return arith.ori(low, arith.muli(arith.andi(nibbles, splat(_NIBBLE_SIGNS)), splat(_SIGN_FILL)))

    low, high = extend(raw), extend(arith.shrui(raw, splat(4)))
    order = [p for i in range(dwords) for p in (i, dwords + i)]  # v0..v3, v4..v7 per raw dword
    return vector.shuffle(low, high, order)


def _ir(value):
    return value.ir_value() if hasattr(value, "ir_value") else value


def lds_alloc(nbytes: int):
    """!llvm.ptr<3> to a static LDS allocation of `nbytes` bytes (one per kernel)."""
    return fx.to_llvm_ptr(fx.SharedAllocator().allocate(nbytes)._ptr)


def _lds_at(base, byte_offset):
    i8 = ir.IntegerType.get_signless(8)
    offset = byte_offset.ir_value() if hasattr(byte_offset, "ir_value") else byte_offset
    return llvm.getelementptr(base.type, base, [offset], [-2147483648], i8, 0)


def lds_store(base, byte_offset, value) -> None:
    """ds_write of one lane's `value` (a dword vector) at `byte_offset` from the LDS base."""
    llvm.store(value, _lds_at(base, byte_offset))


def lds_load_dwords(base, byte_offset, dwords: int):
    """ds_read of `dwords` consecutive dwords at `byte_offset` from the LDS base."""
    i32 = ir.IntegerType.get_signless(32)
    return llvm.load(ir.VectorType.get([dwords], i32), _lds_at(base, byte_offset))


def workgroup_barrier() -> None:
    """Every wave's earlier LDS writes are visible to every wave after this point (gpu.barrier:
    FlyDSL 0.5 lowers it to s_barrier between workgroup-scope release/acquire fences)."""
    fx.gpu.barrier()


def load_row_info(rsrc, first_row):
    """The 4 consecutive i32 entries of a routing tensor for the 4 accumulator rows of this lane."""
    return fx.Vector(load_dwords(rsrc, first_row * ROUTING_BYTES, 4), (4,), fx.Int32)


def zero_acc(acc: str = "f32"):
    """One lane's 4 accumulator elements of a 16x16 tile, zero: f32, or i32 for integer MFMAs."""
    if acc == "i32":
        return fx.full((4,), 0, fx.Int32)
    return fx.full((4,), 0.0, fx.Float32)


def mfma_tiles(mfma: Mfma, a: list, b: list, accs: list, n_subtiles: int) -> list:
    """accs[mi * n_subtiles + ni] += a[mi] . b[ni]^T for every (M subtile, N subtile) pair
    (4 accumulator elements per lane, of the MFMA's accumulator type)."""
    elem = ir.IntegerType.get_signless(32) if mfma.acc == "i32" else ir.F32Type.get()
    acc_ty = ir.VectorType.get([4], elem)
    return [
        mfma.op(acc_ty, [a[i // n_subtiles], b[i % n_subtiles], acc]) for i, acc in enumerate(accs)
    ]


def acc_f32(acc, kind: str = "f32") -> list:
    """One lane's 4 accumulator elements of a 16x16 tile as f32 values (index them [r]): an i32
    accumulator (the integer MFMAs' exact sum of int8 products) is converted here, in the
    epilogue, before any scale."""
    if kind == "i32":
        return [fx.Vector(acc, (4,), fx.Int32)[i].to(fx.Float32) for i in range(4)]
    return [fx.Vector(acc, (4,), fx.Float32)[i] for i in range(4)]


def silu(x):
    """x * sigmoid(x) in f32 from the hardware exp2/rcp (fx.exp would call ocml, which needs device bitcode)."""
    f32 = ir.F32Type.get()
    e = fx.Float32(rocdl.exp2(f32, (-x * LOG2_E).ir_value()))
    return x * fx.Float32(rocdl.rcp(f32, (1.0 + e).ir_value()))
