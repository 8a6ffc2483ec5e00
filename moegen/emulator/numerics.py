"""Number formats: bf16, f16 and fp8 encodings with the rounding AMD hardware uses (RNE)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .types import Ty


def bf16_to_f32(bits) -> np.ndarray:
    return (np.asarray(bits).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16(x) -> np.ndarray:
    """Round to nearest even; NaN stays a quiet NaN."""
    f = np.asarray(x, dtype=np.float32)
    u = f.view(np.uint32)
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.where(np.isnan(f), (u >> np.uint32(16)) | np.uint32(0x40), r).astype(np.uint16)


@lru_cache(maxsize=None)
def fp8_table(fmt: str) -> np.ndarray:
    """float32 value of each of the 256 codes of an 8-bit E4M3 format (NaN codes are NaN).
    fmt: "fnuz" (gfx942: bias 8, 0x80 = NaN, no -0, no inf) or "fn" (OCP, gfx950: bias 7,
    0x7F/0xFF = NaN, no inf)."""
    bias = 8 if fmt == "fnuz" else 7
    out = np.empty(256, np.float32)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exp, man = (code >> 3) & 0xF, code & 0x7
        mag = man / 8 * 2.0 ** (1 - bias) if exp == 0 else (1 + man / 8) * 2.0 ** (exp - bias)
        out[code] = sign * mag
    if fmt == "fnuz":
        out[0x80] = np.nan
    else:
        out[0x7F] = out[0xFF] = np.nan
    return out


def fp8_to_f32(codes, fmt: str) -> np.ndarray:
    return fp8_table(fmt)[np.asarray(codes, np.uint8)]


def f32_to_fp8(x, fmt: str) -> np.ndarray:
    """f32 -> fp8 code like v_cvt_pk_fp8_f32 with its clamp bit off, the hardware default and
    the only form rocdl.cvt.pk.fp8.f32 can express (the op and llvm.amdgcn.cvt.pk.fp8.f32 have
    no saturation operand): round to nearest even; a magnitude that rounds past the largest
    finite value, +-inf and NaN give NaN (0x80 on fnuz; 0x7F | sign on OCP fn). The rounding
    treats the code after the largest finite one as a virtual value one ulp higher: fnuz 240
    (0x7F, odd) -> 256 (0x80, even), so 248 ties up to NaN; fn 448 (0x7E, even) -> 480 (0x7F,
    odd), so 464 ties down to 448 and anything above is NaN."""
    table = fp8_table(fmt)
    mags = table[:0x80]
    finite = np.nonzero(np.isfinite(mags))[0]
    vals = np.append(mags[finite], 2 * mags[finite[-1]] - mags[finite[-2]])
    codes = np.append(finite, finite[-1] + 1)
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    hi = np.clip(np.searchsorted(vals, a), 0, len(vals) - 1)
    lo = np.maximum(hi - 1, 0)
    d_lo, d_hi = a - vals[lo], vals[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (codes[hi] % 2 == 0))
    code = np.where(pick_hi, codes[hi], codes[lo])
    overflow = (code > finite[-1]) | np.isnan(x)
    if fmt == "fnuz":  # one NaN code, no negative zero
        neg = np.signbit(x) & (code != 0)
        out = np.where(overflow, 0x80, code | np.where(neg, 0x80, 0))
    else:
        out = np.where(overflow, 0x7F, code) | np.where(np.signbit(x), 0x80, 0)
    return out.astype(np.uint8)


def flush_f32_denormals(x) -> np.ndarray:
    """f32 values with denormals replaced by a zero of the same sign (NaN and inf kept)."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < np.float32(2.0**-126), np.copysign(np.float32(0), x), x)


def to_float(x, t: Ty) -> np.ndarray:
    """Stored value of float type t -> numpy float (f32 for bf16)."""
    return bf16_to_f32(x) if t.scalar.kind == "bf16" else np.asarray(x)


def from_float(x, t: Ty) -> np.ndarray:
    """numpy float -> stored value of float type t (RNE)."""
    if t.scalar.kind == "bf16":
        return f32_to_bf16(np.asarray(x, np.float32))
    return np.asarray(x).astype(t.np)
