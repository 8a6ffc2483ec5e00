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
    """Round to nearest even code, saturating to the largest finite magnitude; NaN -> NaN code."""
    table = fp8_table(fmt)
    mags = table[:0x80]
    finite = np.nonzero(np.isfinite(mags))[0]
    vals, codes = mags[finite], finite.astype(np.uint8)
    x = np.asarray(x, np.float32)
    a = np.minimum(np.abs(x), vals[-1])
    hi = np.clip(np.searchsorted(vals, a), 0, len(vals) - 1)
    lo = np.maximum(hi - 1, 0)
    d_lo, d_hi = a - vals[lo], vals[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (codes[hi] % 2 == 0))
    code = np.where(pick_hi, codes[hi], codes[lo])
    neg = np.signbit(x) & (code != 0 if fmt == "fnuz" else True)
    code = code | np.where(neg, np.uint8(0x80), np.uint8(0))
    nan_code = np.uint8(0x80 if fmt == "fnuz" else 0x7F)
    return np.where(np.isnan(x), nan_code, code).astype(np.uint8)


def to_float(x, t: Ty) -> np.ndarray:
    """Stored value of float type t -> numpy float (f32 for bf16)."""
    return bf16_to_f32(x) if t.scalar.kind == "bf16" else np.asarray(x)


def from_float(x, t: Ty) -> np.ndarray:
    """numpy float -> stored value of float type t (RNE)."""
    if t.scalar.kind == "bf16":
        return f32_to_bf16(np.asarray(x, np.float32))
    return np.asarray(x).astype(t.np)
