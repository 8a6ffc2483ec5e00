"""Floating-point ops: arithmetic, compares, conversions (bf16/f16 with RNE) and the llvm.intr
math intrinsics. bf16 math is done in f32 and rounded back; f32 math in f32 (numpy)."""

from __future__ import annotations

import numpy as np

from ..numerics import from_float, to_float
from ..types import signed
from . import handles

_BIN = {
    "llvm.fadd": np.add,
    "llvm.fsub": np.subtract,
    "llvm.fmul": np.multiply,
    "llvm.fdiv": np.divide,
    "llvm.frem": np.fmod,
}


@handles(*_BIN)
def _binary(op, rt):
    t, f = op.out_ty, _BIN[op.name]
    return lambda a, b: from_float(f(to_float(a, t), to_float(b, t)), t)


@handles("llvm.fneg")
def _fneg(op, rt):
    t = op.out_ty
    return lambda a: from_float(-to_float(a, t), t)


# predicate -> comparison; 1..6 ordered (false on NaN), 8..13 unordered (true on NaN)
_FCMP = {
    1: np.equal,
    2: np.greater,
    3: np.greater_equal,
    4: np.less,
    5: np.less_equal,
    6: np.not_equal,
}


@handles("llvm.fcmp")
def _fcmp(op, rt):
    p, t = op.attrs["predicate"].value, op.in_tys[0]

    def fcmp(a, b):
        a, b = to_float(a, t), to_float(b, t)
        nan = np.isnan(a) | np.isnan(b)
        if p in (0, 15):
            return np.broadcast_to(p == 15, nan.shape)
        if p == 7:
            return ~nan
        if p == 14:
            return nan
        r = _FCMP[p if p <= 6 else p - 7](a, b)
        return (r & ~nan) if p <= 6 else (r | nan)

    return fcmp


@handles("llvm.sitofp", "llvm.uitofp")
def _itofp(op, rt):
    t, s = op.out_ty, op.name == "llvm.sitofp"
    return lambda a: from_float((signed(a) if s else np.asarray(a)).astype(np.float64), t)


@handles("llvm.fptosi", "llvm.fptoui")
def _fptoi(op, rt):
    t, src = op.out_ty, op.in_tys[0]
    inter = np.int64 if op.name == "llvm.fptosi" else np.uint64
    return lambda a: np.trunc(to_float(a, src)).astype(inter).astype(t.np)


@handles("llvm.fpext", "llvm.fptrunc")
def _fpcast(op, rt):
    t, src = op.out_ty, op.in_tys[0]
    # f32 -> bf16 / f16: one rounding (RNE) from the exact source value
    return lambda a: from_float(
        to_float(a, src).astype(np.float32 if src.scalar.bits <= 32 else np.float64), t
    )


_MATH = {
    "exp2": np.exp2,
    "exp": np.exp,
    "log2": np.log2,
    "log": np.log,
    "fabs": np.abs,
    "sqrt": np.sqrt,
    "floor": np.floor,
    "ceil": np.ceil,
    "trunc": np.trunc,
    "rint": np.rint,
    "roundeven": np.rint,
    "maxnum": np.fmax,
    "minnum": np.fmin,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "copysign": np.copysign,
}


@handles(*[f"llvm.intr.{n}" for n in _MATH])
def _math(op, rt):
    t, f = op.out_ty, _MATH[op.name[len("llvm.intr.") :]]
    return lambda *a: from_float(f(*[to_float(x, t) for x in a]), t)


@handles("llvm.intr.fma", "llvm.intr.fmuladd")
def _fma(op, rt):
    t = op.out_ty  # fused: exact product and sum in f64, one rounding
    return lambda a, b, c: from_float(
        to_float(a, t).astype(np.float64) * to_float(b, t) + to_float(c, t).astype(np.float64), t
    )
