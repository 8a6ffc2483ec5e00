"""MFMA (matrix fused multiply-add) ops: one wave computes D = A @ B + C for an M x N x K
tile whose operands are spread over the 64 lanes.

Operand layout (CDNA3/CDNA4 ISA, "dependent matrix" layouts; checked by hand in the tests):
each lane holds KL = K * M / 64 consecutive k of one row of A (one column of B):
    A[i, k] = lane (i + M * (k // KL)), element k % KL        (B[k, j] likewise with j for i)
    16x16x16: KL = 4;  16x16x32: KL = 8;  32x32x8: KL = 4.
Result layout (M = N = 16 or 32): lane l holds column l % N and, for accumulator element r,
    row = 8 * (r // 4) + 4 * (l // N) + r % 4        (16x16: row = 4 * (l // 16) + r)
Products are exact (bf16/f16/fp8 in f64, i8 in i64); f32 results sum in f64 and round once.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import EmulatorError
from ..numerics import bf16_to_f32, fp8_to_f32
from . import handles

# op name -> (M, N, K, operand format)
SHAPES = {
    "rocdl.mfma.f32.16x16x16bf16.1k": (16, 16, 16, "bf16"),
    "rocdl.mfma.f32.16x16x16f16": (16, 16, 16, "f16"),
    "rocdl.mfma.f32.16x16x32.bf16": (16, 16, 32, "bf16"),
    "rocdl.mfma.f32.16x16x32.f16": (16, 16, 32, "f16"),
    "rocdl.mfma.f32.32x32x8bf16.1k": (32, 32, 8, "bf16"),
    "rocdl.mfma.f32.32x32x8f16": (32, 32, 8, "f16"),
    "rocdl.mfma.f32.16x16x32.fp8.fp8": (16, 16, 32, "fp8"),
    "rocdl.mfma.i32.16x16x32.i8": (16, 16, 32, "i8"),
}


def operand_lanes(m: int, k: int):
    """(lane, element) index arrays [m, k] of operand A[i, k] (B[k, j] with j for i)."""
    kl = k * m // 64
    i, kk = np.meshgrid(np.arange(m), np.arange(k), indexing="ij")
    return i + m * (kk // kl), kk % kl


def result_rows(m: int, n: int) -> np.ndarray:
    """[64, m*n/64] row held by lane l in accumulator element r (column = l % n)."""
    lane, r = np.meshgrid(np.arange(64), np.arange(m * n // 64), indexing="ij")
    return 8 * (r // 4) + 4 * (lane // n) + r % 4


def _decode(fmt: str, fp8_format: str):
    """Stored per-lane operand [L, ...] -> numbers [L, KL]."""
    if fmt == "bf16":
        return lambda x: bf16_to_f32(x).astype(np.float64)
    if fmt == "f16":
        return lambda x: (
            np.asarray(x).view(np.float16).astype(np.float64)
            if np.asarray(x).dtype == np.uint16
            else np.asarray(x, np.float64)
        )
    if fmt == "fp8":
        return lambda x: fp8_to_f32(np.ascontiguousarray(x).view(np.uint8), fp8_format).astype(
            np.float64
        )
    return lambda x: np.ascontiguousarray(x).view(np.int8).astype(np.int64)


@handles(*SHAPES)
def _mfma(op, rt):
    m, n, k, fmt = SHAPES[op.name]
    for flag in ("cbsz", "abid"):
        if flag in op.attrs and int(op.attrs[flag].value) != 0:
            raise EmulatorError(f"{op.what}: {flag} != 0 (broadcast modes) is not modelled")
    if "blgp" in op.attrs and not re.search(r"none|^0", str(op.attrs["blgp"])):
        raise EmulatorError(f"{op.what}: blgp {op.attrs['blgp']} is not modelled")
    a_lane, a_elem = operand_lanes(m, k)  # A[i, k]
    b_lane, b_elem = operand_lanes(n, k)  # B^T[j, k]
    rows = result_rows(m, n)
    cols = np.broadcast_to((np.arange(64) % n)[:, None], rows.shape)
    decode = _decode(fmt, rt.fp8_format)
    kl = k * m // 64
    out_t, a_ty = op.out_ty, op.in_tys[0]

    def mfma(a, b, c):
        L = rt.batch.L
        rt.batch.require_full_waves(op.what)
        w = L // 64
        # NaN and inf operands propagate, as on hardware (an MFMA raises no exception): rows of
        # a tile that hold unwritten LDS (0xFF bytes) or unfilled memory (any bits, signalling
        # NaNs too) compute garbage that no checked output may use, silently.
        with np.errstate(invalid="ignore", over="ignore"):
            av = decode(np.broadcast_to(a, (L,) + a_ty.eshape)).reshape(w, 64, kl)
            bv = decode(np.broadcast_to(b, (L,) + a_ty.eshape)).reshape(w, 64, kl)
            A = av[:, a_lane, a_elem]  # [w, m, k]
            Bt = bv[:, b_lane, b_elem]  # [w, n, k]
            D = np.matmul(A, Bt.transpose(0, 2, 1))  # [w, m, n]
            d = D[:, rows, cols].reshape(L, -1)
            rt.stats["mfma"] += w
            acc = np.broadcast_to(c, (L,) + out_t.eshape)
            if fmt == "i8":
                return (d + acc.view(np.int32)).astype(np.int32).view(np.uint32)
            return (d + acc.astype(np.float64)).astype(np.float32)

    return mfma
