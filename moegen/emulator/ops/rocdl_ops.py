"""ROCDL ops other than memory, MFMA and synchronization (sync.py): ids, cross-lane ops
(readfirstlane, readlane, ballot, mbcnt, ds_bpermute), hardware math (v_exp/v_log/v_rcp/v_rsq:
modelled as correctly rounded f32) and fp8 conversions (fnuz on gfx942, OCP on gfx950)."""

from __future__ import annotations

import numpy as np

from ..errors import ExecError
from ..execution import WAVE
from ..numerics import f32_to_fp8, fp8_to_f32
from . import handles


@handles(
    "rocdl.workitem.id.",
    "rocdl.workgroup.id.",
    "rocdl.workitem.dim.",
    "rocdl.workgroup.dim.",
    prefix=True,
)
def _ids(op, rt):
    key = op.name[len("rocdl.") :]
    return lambda: rt.batch.ids[key]


def _per_wave(x, rt):
    return rt.batch.waves(
        np.ascontiguousarray(
            np.broadcast_to(x, (rt.batch.L,) + np.shape(x)[1:] if np.ndim(x) else (rt.batch.L,))
        )
    )


@handles("rocdl.readfirstlane")
def _readfirstlane(op, rt):
    def readfirstlane(x):
        if np.ndim(x) == 0:
            return x
        rt.batch.require_full_waves(op.what)
        xv, m = _per_wave(x, rt), rt.batch.waves(rt.batch.mask)
        first = np.argmax(m, axis=1)
        return np.repeat(xv[np.arange(xv.shape[0]), first], WAVE, axis=0)

    return readfirstlane


@handles("rocdl.readlane")
def _readlane(op, rt):
    def readlane(x, lane):
        if np.ndim(lane):
            raise ExecError(f"{op.what}: readlane with a per-lane lane index")
        if np.ndim(x) == 0:
            return x
        rt.batch.require_full_waves(op.what)
        return np.repeat(_per_wave(x, rt)[:, int(lane) % WAVE], WAVE, axis=0)

    return readlane


def _wave_masks(bits: np.ndarray) -> np.ndarray:
    """[waves, 64] bool -> [waves] uint64 bit masks."""
    weights = np.left_shift(np.uint64(1), np.arange(WAVE, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(1, dtype=np.uint64)


@handles("rocdl.ballot")
def _ballot(op, rt):
    t = op.out_ty

    def ballot(pred):
        rt.batch.require_full_waves(op.what)
        bits = rt.batch.waves(np.broadcast_to(pred, (rt.batch.L,)) & rt.batch.mask)
        return np.repeat(_wave_masks(bits), WAVE).astype(t.np)

    return ballot


@handles("rocdl.mbcnt.lo", "rocdl.mbcnt.hi")
def _mbcnt(op, rt):
    hi = op.name.endswith("hi")

    def mbcnt(mask, x):
        """Count of set bits of `mask` (the lo or hi 32 lanes) for lanes below this one, + x."""
        below = np.clip(rt.batch.lane.astype(np.int64) - (32 if hi else 0), 0, 32).astype(np.uint64)
        bits = np.asarray(mask).astype(np.uint64) & ((np.uint64(1) << below) - np.uint64(1))
        count = sum(((bits >> np.uint64(k)) & np.uint64(1)) for k in range(32)).astype(np.uint32)
        return count + np.asarray(x, np.uint32)

    return mbcnt


@handles("rocdl.ds_bpermute")
def _bpermute(op, rt):
    def bpermute(index, src):
        """Lane l gets src of lane (index[l] / 4) mod 64 of its wave."""
        rt.batch.require_full_waves(op.what)
        srcs = _per_wave(src, rt)
        idx = rt.batch.waves(
            (np.broadcast_to(index, (rt.batch.L,)) // np.uint32(4)) % np.uint32(WAVE)
        ).astype(np.int64)
        return np.take_along_axis(srcs, idx, axis=1).reshape(-1)

    return bpermute


_HW_MATH = {
    "rocdl.exp2": np.exp2,
    "rocdl.log": np.log2,
    "rocdl.rcp": lambda x: np.float32(1) / x,
    "rocdl.rsq": lambda x: np.float32(1) / np.sqrt(x),
    "rocdl.sqrt": np.sqrt,
}


@handles(*_HW_MATH)
def _hw_math(op, rt):
    """v_exp_f32 / v_log_f32 (base 2) / v_rcp_f32 / v_rsq_f32 / v_sqrt_f32; hardware results are
    ~1 ulp approximations, modelled as correctly rounded f32."""
    f, t = _HW_MATH[op.name], op.out_ty

    def math(x):
        with np.errstate(over="ignore"):  # a result past the f32 range is inf, as on hardware
            return np.asarray(f(np.asarray(x, np.float32).astype(np.float64))).astype(t.np)

    return math


@handles("rocdl.fmed3")
def _fmed3(op, rt):
    return lambda a, b, c: np.fmax(np.fmin(a, b), np.fmin(np.fmax(a, b), c))


@handles("rocdl.cvt.pk.fp8.f32")
def _cvt_pk_fp8(op, rt):
    """Two f32 -> two fp8 bytes into the low (word_sel false) or high half of `old`."""
    high = str(op.attrs.get("wordSel", "false")) == "true"

    def cvt(a, b, old):
        lo = f32_to_fp8(a, rt.fp8_format).astype(np.uint32)
        hi = f32_to_fp8(b, rt.fp8_format).astype(np.uint32)
        pair = lo | (hi << np.uint32(8))
        old = np.asarray(old, np.uint32)
        if high:
            return (old & np.uint32(0xFFFF)) | (pair << np.uint32(16))
        return (old & np.uint32(0xFFFF0000)) | pair

    return cvt


@handles("rocdl.cvt.f32.fp8")
def _cvt_f32_fp8(op, rt):
    sel = int(op.attrs["byteSel"].value)
    return lambda w: fp8_to_f32(
        (np.asarray(w, np.uint32) >> np.uint32(8 * sel)) & np.uint32(0xFF), rt.fp8_format
    )
