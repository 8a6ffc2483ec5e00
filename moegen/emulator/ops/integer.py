"""Integer ops: constants, wrapping arithmetic (optional signed-i32 overflow report), bit ops,
shifts, division, comparisons, select, casts between integer widths, min/max."""

from __future__ import annotations

import numpy as np

from ..errors import EmulatorError, ExecError
from ..numerics import f32_to_bf16
from ..types import Ty, signed, signed_dtype, zero_of
from . import handles


def const_value(attr, t: Ty):
    """Value of an llvm.mlir.constant attribute of type t."""
    s = str(attr)
    if t.kind == "s" or s.startswith(("#llvm.zero", "#llvm.undef")):
        return zero_of(t)
    if hasattr(attr, "is_splat"):  # dense vector constant
        e = t.scalar
        if e.kind in ("bf16", "f8"):
            if not attr.is_splat:
                raise EmulatorError(f"non-splat {t} constant is not modelled")
            return np.broadcast_to(
                f32_to_bf16(np.float32(float(attr.get_splat_value().value))), t.eshape
            ).copy()
        arr = np.array(attr)
        if e.kind == "i":
            arr = arr.astype(bool) if e.bits == 1 else arr.astype(np.int64).astype(t.np)
        return arr.astype(t.np).reshape(t.eshape)
    if s in ("true", "false"):
        return np.array(s == "true")
    if t.kind == "i":
        v = attr.value
        if t.bits == 1:
            return np.array(bool(v & 1))
        if t.bits == 128:
            v &= (1 << 128) - 1
            return np.array([(v >> (32 * k)) & 0xFFFFFFFF for k in range(4)], np.uint32)
        return np.array(v & ((1 << t.bits) - 1), dtype=t.np)
    if t.kind == "f":
        return np.array(attr.value, dtype=t.np)
    if t.kind == "bf16":
        return f32_to_bf16(np.float32(attr.value))
    raise EmulatorError(f"constant {s} of type {t} is not modelled")


@handles("llvm.mlir.constant")
def _constant(op, rt):
    v = const_value(op.attrs["value"], op.out_ty)
    return lambda: v


@handles("llvm.mlir.zero", "llvm.mlir.undef", "llvm.mlir.poison")
def _zero(op, rt):
    v = zero_of(op.out_ty)
    return lambda: v


@handles("llvm.freeze")
def _freeze(op, rt):
    return lambda a: a


_ARITH = {"llvm.add": np.add, "llvm.sub": np.subtract, "llvm.mul": np.multiply}
_BOOL_ARITH = {"llvm.add": np.bitwise_xor, "llvm.sub": np.bitwise_xor, "llvm.mul": np.bitwise_and}


@handles(*_ARITH)
def _arith(op, rt):
    t = op.out_ty
    if t.np == np.bool_:
        f = _BOOL_ARITH[op.name]
        return lambda a, b: f(a, b)
    f = _ARITH[op.name]
    if not (rt.check_overflow and t.text == "i32"):
        return lambda a, b: f(a, b, dtype=t.np)
    nsw = "nsw: the result is poison" if "nsw" in str(op.attrs.get("overflowFlags", "")) else ""

    def checked(a, b):
        exact = f(signed(a).astype(np.int64), signed(b).astype(np.int64))
        rt.record_overflow(
            "signed-overflow", op, (exact > 2**31 - 1) | (exact < -(2**31)), exact, nsw
        )
        if op.computes_buffer_offset:
            _report_unsigned_wrap(rt, op, f, a, b)
        return exact.astype(np.int32).view(np.uint32)

    return checked


def _report_unsigned_wrap(rt, op, f, a, b) -> None:
    """Report the lanes where an i32 op that computes a buffer offset leaves [0, 2^32) when its
    operands are read as unsigned: the 32-bit offset wrapped. add/sub are exact in int64, a
    product of two u32 in uint64."""
    ua, ub = np.asarray(a, np.uint32), np.asarray(b, np.uint32)
    if f is np.multiply:
        value = ua.astype(np.uint64) * ub.astype(np.uint64)
        wrapped = value > np.uint64(0xFFFFFFFF)
    else:
        value = f(ua.astype(np.int64), ub.astype(np.int64))
        wrapped = (value < 0) | (value > 0xFFFFFFFF)
    rt.record_overflow("unsigned-wrap", op, wrapped, value)


_BITS = {"llvm.and": np.bitwise_and, "llvm.or": np.bitwise_or, "llvm.xor": np.bitwise_xor}


@handles(*_BITS)
def _bits(op, rt):
    f = _BITS[op.name]
    return lambda a, b: f(a, b)


@handles("llvm.shl", "llvm.lshr", "llvm.ashr")
def _shift(op, rt):
    t = op.out_ty
    if op.name == "llvm.ashr":
        return lambda a, b: np.right_shift(signed(a), signed(b)).view(t.np)
    f = np.left_shift if op.name == "llvm.shl" else np.right_shift
    shift = lambda a, b: f(a, np.asarray(b).astype(t.np)).astype(t.np)  # noqa: E731
    if not (rt.check_overflow and op.computes_buffer_offset and op.name == "llvm.shl"):
        return shift
    if t.text != "i32":  # buffer offsets are i32; wider index math is not an offset wrap
        return shift

    def checked(a, b):
        """shl of a buffer offset: report lanes whose set bits are shifted past bit 31."""
        exact = np.asarray(a, np.uint32).astype(np.uint64) << np.asarray(b, np.uint64)
        rt.record_overflow("unsigned-wrap", op, exact > np.uint64(0xFFFFFFFF), exact)
        return shift(a, b)

    return checked


@handles("llvm.sdiv", "llvm.srem", "llvm.udiv", "llvm.urem")
def _div(op, rt):
    """Truncating division (LLVM LangRef). Undefined behaviour is refused (ExecError) in any
    active lane: a zero divisor, and for sdiv/srem the overflow INT_MIN / -1; `exact`
    udiv/sdiv with a non-zero remainder (poison) likewise."""
    t = op.out_ty
    is_signed, rem = op.name[5] == "s", op.name.endswith("rem")
    exact = "isExact" in op.attrs
    bits = t.scalar.bits

    def refuse(bad, why):
        bad = np.asarray(bad)
        lanes = (
            bad.reshape(bad.shape[:1] + (-1,)).any(-1) if bad.ndim > len(t.eshape) else bad.any()
        )
        if (np.broadcast_to(lanes, rt.batch.mask.shape) & rt.batch.mask).any():
            raise ExecError(f"{op.what}: {why} in an active lane (LLVM LangRef: {op.name[5:]})")

    def div(a, b):
        if is_signed:
            a, b = signed(a).astype(np.int64), signed(b).astype(np.int64)
            refuse(
                (a == -(1 << (bits - 1))) & (b == -1),
                "signed overflow (INT_MIN / -1), undefined behaviour",
            )
        else:
            a, b = np.asarray(a).astype(np.uint64), np.asarray(b).astype(np.uint64)
        zero = np.asarray(b == 0)
        refuse(zero, "division by zero, undefined behaviour")
        b = np.where(zero, 1, b).astype(b.dtype)
        r = np.fmod(a, b)  # truncating division, as in C and LLVM
        if exact:
            refuse(r != 0, "exact division with a remainder, poison")
        v = r if rem else (a - r) // b
        return v.astype(signed_dtype(t)).view(t.np) if is_signed else v.astype(t.np)

    return div


_ICMP = [np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal]


@handles("llvm.icmp")
def _icmp(op, rt):
    p = op.attrs["predicate"].value  # eq ne slt sle sgt sge ult ule ugt uge
    if p < 2:
        f = _ICMP[p]
        return lambda a, b: f(a, b)
    if p < 6:
        f = _ICMP[p]
        return lambda a, b: f(signed(a), signed(b))
    f = _ICMP[p - 4]
    return lambda a, b: f(a, b)


@handles("llvm.select")
def _select(op, rt):
    t, ct = op.out_ty, op.in_tys[0]

    def select(c, a, b):
        c = np.asarray(c)
        if t.kind == "s":
            if c.ndim:
                return tuple(
                    np.where(c.reshape(c.shape + (1,) * (np.ndim(x) - 1)), x, y)
                    for x, y in zip(a, b)
                )
            return a if c else b
        if t.eshape and ct.kind != "v":
            c = c.reshape(c.shape + (1,) * len(t.eshape))
        return np.where(c, a, b)

    return select


@handles("llvm.sext")
def _sext(op, rt):
    t, src = op.out_ty, op.in_tys[0]
    sd = signed_dtype(t)
    if src.scalar.bits == 1:
        return lambda a: np.where(a, sd(-1), sd(0)).view(t.np)
    return lambda a: signed(a).astype(sd).view(t.np)


@handles("llvm.zext")
def _zext(op, rt):
    t = op.out_ty
    return lambda a: np.asarray(a).astype(t.np)


@handles("llvm.trunc")
def _trunc(op, rt):
    t = op.out_ty
    if t.scalar.bits == 1:
        return lambda a: (np.asarray(a) & 1).astype(bool)
    return lambda a: np.asarray(a).astype(t.np)


@handles("llvm.intr.smax", "llvm.intr.smin", "llvm.intr.umax", "llvm.intr.umin")
def _minmax(op, rt):
    t = op.out_ty
    f = np.maximum if op.name.endswith("max") else np.minimum
    if op.name.startswith("llvm.intr.s"):
        return lambda a, b: f(signed(a), signed(b)).view(t.np)
    return lambda a, b: f(a, b)


@handles("llvm.intr.ctpop")
def _ctpop(op, rt):
    t = op.out_ty

    def ctpop(a):
        a = np.asarray(a).astype(np.uint64)
        return sum(((a >> np.uint64(k)) & np.uint64(1)) for k in range(t.scalar.bits)).astype(t.np)

    return ctpop
