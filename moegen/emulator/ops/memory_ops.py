"""Memory ops: pointer arithmetic, global and LDS load/store, AMD buffer load/store/atomics,
scalar buffer loads and llvm.atomicrmw.

Atomics with colliding lanes are applied one occurrence at a time in ascending lane order (a
fixed, legal hardware order), so every lane gets the exact old value it would have seen and
each add rounds like the hardware's (e.g. per bf16 half with RNE for pk_add_bf16).
"""

from __future__ import annotations

import numpy as np

from ..errors import EmulatorError
from ..memory import ambiguous_lanes, buffer_addresses, describe_rsrc, make_rsrc
from ..numerics import bf16_to_f32, f32_to_bf16, flush_f32_denormals
from ..types import Ty, parse_type, signed
from . import handles, intrinsic

DYNAMIC_INDEX = -2147483648  # rawConstantIndices marker of a dynamic GEP index


# ---- pointers -----------------------------------------------------------------------------


@handles("llvm.getelementptr")
def _gep(op, rt):
    raw = [int(x) for x in op.attrs["rawConstantIndices"]]
    et_attr = op.attrs["elem_type"]
    et = parse_type(str(et_attr.value if hasattr(et_attr, "value") else et_attr))
    pt = op.out_ty
    wrap = np.uint64(0xFFFFFFFF) if pt.np == np.uint32 else None

    def gep(base, *dyn):
        dyn = list(dyn)
        off, cur = np.int64(0), et
        for k, r in enumerate(raw):
            idx = signed(dyn.pop(0)).astype(np.int64) if r == DYNAMIC_INDEX else np.int64(r)
            if k == 0:
                off = off + idx * np.int64(et.size)
            elif cur.kind in ("a", "v"):
                cur = cur.elem
                off = off + idx * np.int64(cur.size)
            else:  # struct field (constant index)
                off = off + np.int64(sum(f.size for f in cur.fields[: int(idx)]))
                cur = cur.fields[int(idx)]
        r = np.add(np.asarray(base, np.uint64), np.asarray(off).astype(np.uint64), dtype=np.uint64)
        return (r & wrap).astype(np.uint32) if wrap is not None else r

    return gep


@handles("llvm.mlir.addressof")
def _addressof(op, rt):
    name = str(op.attrs["global_name"]).lstrip("@")
    if name not in rt.lds_offsets:
        raise EmulatorError(
            f"{op.what}: global @{name} is not an LDS (address space 3) global; "
            "only LDS globals are modelled"
        )
    v = np.array(rt.lds_offsets[name], np.uint32)
    return lambda: v


def _lanes(x, rt, t: Ty | None = None):
    shape = (rt.batch.L,) + (t.eshape if t is not None else ())
    return np.ascontiguousarray(np.broadcast_to(x, shape))


def _lane_where(rt, per_lane=1):
    return lambda k: rt.batch.where(k // per_lane)


def _read(rt, op, ptr_ty: Ty, ptr, nbytes: int, active) -> np.ndarray:
    b = rt.batch
    if ptr_ty.aspace == 3:
        return b.lds.read(
            b.wg_slot, b.wave, _lanes(ptr, rt), nbytes, active, op.what, _lane_where(rt)
        )
    if ptr_ty.aspace not in (0, 1):
        raise EmulatorError(f"{op.what}: address space {ptr_ty.aspace} is not modelled")
    return rt.mem.read(_lanes(ptr, rt), nbytes, active, op.what, _lane_where(rt))


def _write(rt, op, ptr_ty: Ty, ptr, data: np.ndarray, active) -> None:
    b = rt.batch
    if ptr_ty.aspace == 3:
        b.lds.write(b.wg_slot, b.wave, _lanes(ptr, rt), data, active, op.what, _lane_where(rt))
    elif ptr_ty.aspace in (0, 1):
        rt.mem.write(_lanes(ptr, rt), data, active, op.what, _lane_where(rt))
    else:
        raise EmulatorError(f"{op.what}: address space {ptr_ty.aspace} is not modelled")


@handles("llvm.load")
def _load(op, rt):
    t, pt = op.out_ty, op.in_tys[0]

    def load(p):
        data = _read(rt, op, pt, p, t.size, rt.batch.mask)
        rt.stats["bytes_loaded"] += int(rt.batch.mask.sum()) * t.size
        return data.view(t.np).reshape((rt.batch.L,) + t.eshape)

    return load


@handles("llvm.store")
def _store(op, rt):
    t, pt = op.in_tys[0], op.in_tys[1]

    def store(v, p):
        data = _lanes(v, rt, t).view(np.uint8).reshape(rt.batch.L, t.size)
        _write(rt, op, pt, p, data, rt.batch.mask)
        rt.stats["bytes_stored"] += int(rt.batch.mask.sum()) * t.size

    return store


# ---- atomics --------------------------------------------------------------------------------


def _rounds(addr: np.ndarray, active: np.ndarray):
    """Active lanes split into rounds without address collisions: round r holds the r-th
    lane (in ascending lane order) of every address."""
    lanes = np.nonzero(active)[0]
    if lanes.size == 0:
        return []
    a = addr[lanes]
    order = np.argsort(a, kind="stable")
    sa = a[order]
    starts = np.r_[True, sa[1:] != sa[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(sa.size), 0))
    occ = np.empty(sa.size, np.int64)
    occ[order] = np.arange(sa.size) - first
    return [lanes[occ == r] for r in range(int(occ.max()) + 1)]


def _atomic(rt, op, read, write, addr, active, nbytes, update) -> np.ndarray:
    """Apply update(old_bytes [n, nbytes], lanes) -> new bytes; returns old bytes [L, nbytes]."""
    old = np.zeros((rt.batch.L, nbytes), np.uint8)
    for lanes in _rounds(addr, active):
        sel = np.zeros(rt.batch.L, bool)
        sel[lanes] = True
        cur = read(addr, sel)[lanes]
        old[lanes] = cur
        new = np.zeros((rt.batch.L, nbytes), np.uint8)
        new[lanes] = update(cur, lanes)
        write(addr, new, sel)
    rt.stats["atomics"] += int(active.sum())
    return old


def _combine(kind: str, t: Ty, arch: str):
    """(old bytes [n, size], value [n, ...]) -> new bytes, for an atomic of element type t."""
    e = t.scalar

    def as_vals(b):
        return b.view(t.np).reshape((-1,) + t.eshape)

    if kind == "fadd" and e.kind == "bf16":  # pk_add_bf16: per half, f32 add, RNE
        return (
            lambda old, v: f32_to_bf16(bf16_to_f32(as_vals(old)) + bf16_to_f32(v))
            .view(np.uint8)
            .reshape(old.shape)
        )
    if kind in ("fadd", "fmax", "fmin"):
        f = {"fadd": np.add, "fmax": np.fmax, "fmin": np.fmin}[kind]
        return (
            lambda old, v: f(as_vals(old), np.asarray(v, t.np))
            .astype(t.np)
            .view(np.uint8)
            .reshape(old.shape)
        )
    if kind in ("add", "sub", "xchg", "and", "or", "xor", "umax", "umin"):
        f = {
            "add": np.add,
            "sub": np.subtract,
            "xchg": lambda o, v: v,
            "and": np.bitwise_and,
            "or": np.bitwise_or,
            "xor": np.bitwise_xor,
            "umax": np.maximum,
            "umin": np.minimum,
        }[kind]
        return (
            lambda old, v: np.asarray(f(as_vals(old), np.asarray(v, t.np)), t.np)
            .view(np.uint8)
            .reshape(old.shape)
        )
    if kind in ("max", "min"):
        f = np.maximum if kind == "max" else np.minimum
        return (
            lambda old, v: f(signed(as_vals(old)), signed(np.asarray(v, t.np)))
            .view(t.np)
            .view(np.uint8)
            .reshape(old.shape)
        )
    return None


_RMW_KINDS = {
    0: "xchg",
    1: "add",
    2: "sub",
    3: "and",
    5: "or",
    6: "xor",
    7: "max",
    8: "min",
    9: "umax",
    10: "umin",
    11: "fadd",
    12: "fsub",
    13: "fmax",
    14: "fmin",
}


@handles("llvm.atomicrmw")
def _atomicrmw(op, rt):
    pt, t = op.in_tys[0], op.in_tys[1]
    attr = op.attrs["bin_op"]
    kind = (
        _RMW_KINDS.get(getattr(attr, "value", None))
        or str(attr).split()[-1].strip('"').split(".")[-1]
    )
    combine = _combine(kind, t, rt.arch)
    if combine is None:
        raise EmulatorError(f"{op.what}: atomicrmw {kind} on {t} is not modelled")

    def rmw(p, v):
        addr = _lanes(p, rt).astype(np.uint64)
        vals = _lanes(v, rt, t)
        read = lambda a, m: _read(rt, op, pt, a, t.size, m)  # noqa: E731
        write = lambda a, d, m: _write(rt, op, pt, a, d, m)  # noqa: E731
        read(addr, rt.batch.mask)  # every address checked before anything is written
        old = _atomic(
            rt,
            op,
            read,
            write,
            addr,
            rt.batch.mask,
            t.size,
            lambda o, lanes: combine(o, vals[lanes]),
        )
        return old.view(t.np).reshape((rt.batch.L,) + t.eshape)

    return rmw


# ---- buffer resources -------------------------------------------------------------------


# V# dword 3 (flags) values the emulator models, per arch: the one FlyDSL 0.5 emits for CDNA
# (flydsl/expr/rocdl/universal.py make_buffer_ptr: (7 << 12) | (4 << 15), seen as
# `llvm.mlir.constant(159744 : i32)` in the dumps): NUM_FORMAT 7 and DATA_FORMAT 4 (32-bit,
# ignored by untyped raw buffer ops), every other field 0 (no ADD_TID_ENABLE, no swizzle, no
# index stride), which is what the raw-buffer rule in memory.py assumes.
ACCEPTED_RSRC_FLAGS = {"gfx942": (0x27000,), "gfx950": (0x27000,)}


@handles("rocdl.make.buffer.rsrc")
def _make_rsrc(op, rt):
    accepted = ACCEPTED_RSRC_FLAGS[rt.arch]

    def make(base, stride, num_records, flags):
        bad = sorted(set(np.unique(np.asarray(flags, np.uint32)).tolist()) - set(accepted))
        if bad:
            raise EmulatorError(
                f"{op.what}: buffer resource flags (V# dword 3) 0x{bad[0]:x} are not modelled "
                f"on {rt.arch}; accepted: {', '.join(f'0x{v:x}' for v in accepted)} (what "
                f"FlyDSL 0.5's make_buffer_ptr emits). Build the resource with "
                f"rocdl.make_buffer_ptr, or extend the emulator's buffer rule for these flags"
            )
        return make_rsrc(base, stride, num_records, flags)

    return make


# Buffer op `aux` (cache policy) bits on gfx940-family targets (gfx942, gfx950), from LLVM's
# IntrinsicsAMDGPU.td (raw.ptr.buffer.* operand `aux`): bit 0 sc0, bit 1 nt, bit 4 sc1. They
# choose cache coherence scope and streaming (non-temporal) behaviour, never the bytes a
# single-kernel run reads or writes (AMDGPUUsage.rst, GFX942 code sequences: a nontemporal load
# is the same load with nt=1), so the emulator accepts and ignores them. Any other bit (swz,
# bit 3; the volatile bit 31; anything unassigned) is refused when the kernel is prepared.
CACHE_POLICY_BITS = {"sc0": 1, "nt": 2, "sc1": 16}


def check_cache_policy(op, rt) -> int:
    """The op's aux bits; raises EmulatorError for a bit outside CACHE_POLICY_BITS."""
    a = op.attrs.get("aux")
    aux = int(getattr(a, "value", a) or 0)
    known = sum(CACHE_POLICY_BITS.values())
    if aux & ~known:
        raise EmulatorError(
            f"{op.what}: buffer op aux (cache policy) 0x{aux:x} has bits 0x{aux & ~known:x} "
            f"the emulator does not model on {rt.arch}; modelled: "
            + ", ".join(f"{k} (0x{v:x})" for k, v in CACHE_POLICY_BITS.items())
        )
    return aux


def _buffer_where(rt, r, vo, so, nch):
    def where(k):
        i = k // nch
        rr = np.broadcast_to(r, (rt.batch.L, 4))[i]
        v = int(np.broadcast_to(vo, (rt.batch.L,))[i])
        s = int(np.broadcast_to(so, (rt.batch.L,))[i])
        return f"{rt.batch.where(i)} [{describe_rsrc(rr)} voffset=0x{v:x} soffset=0x{s:x}]"

    return where


def _record_ambiguous(rt, op, vo, offsets: np.ndarray, in_range: np.ndarray) -> None:
    """Record the active lanes whose `voffset + inst_offset` may cross 2^32 (ambiguous_lanes)
    where the two readings differ: the wrapped offset (executed) has an in-range dword, while
    the unwrapped one (>= 2^32) is out of range for every num_records (< 2^32)."""
    if not op.folded_addend:
        return
    b = rt.batch
    lanes = np.broadcast_to(ambiguous_lanes(vo, op.folded_addend), (b.L,)) & b.mask
    lanes &= in_range.any(1)
    if lanes.any():
        rt.record_ambiguous(op, np.nonzero(lanes)[0], offsets, offsets + np.uint64(1 << 32))


def buffer_load(rt, op, t: Ty, r, vo, so) -> np.ndarray:
    L = rt.batch.L
    addr, inr, chunk, offsets = buffer_addresses(r, vo, so, t.size, L)
    _record_ambiguous(rt, op, vo, offsets, inr)
    nch = addr.shape[1]
    act = rt.batch.mask[:, None] & inr  # out of range: no access, the load returns 0
    data = rt.mem.read(
        addr.reshape(-1), chunk, act.reshape(-1), op.what, _buffer_where(rt, r, vo, so, nch)
    )
    rt.stats["bytes_loaded"] += int(act.sum()) * chunk
    return data.reshape(L, t.size).view(t.np).reshape((L,) + t.eshape)


@handles("rocdl.raw.ptr.buffer.load")
def _buffer_load(op, rt):
    check_cache_policy(op, rt)
    return lambda r, vo, so: buffer_load(rt, op, op.out_ty, r, vo, so)


@handles("rocdl.raw.ptr.buffer.store")
def _buffer_store(op, rt):
    check_cache_policy(op, rt)
    t = op.in_tys[0]

    def store(d, r, vo, so):
        L = rt.batch.L
        addr, inr, chunk, offsets = buffer_addresses(r, vo, so, t.size, L)
        _record_ambiguous(rt, op, vo, offsets, inr)
        nch = addr.shape[1]
        act = rt.batch.mask[:, None] & inr  # out of range: the store is dropped
        data = _lanes(d, rt, t).view(np.uint8).reshape(L * nch, chunk)
        rt.mem.write(
            addr.reshape(-1), data, act.reshape(-1), op.what, _buffer_where(rt, r, vo, so, nch)
        )
        rt.stats["bytes_stored"] += int(act.sum()) * chunk

    return store


def _f32_add_ftz(old: np.ndarray, v) -> np.ndarray:
    """buffer_atomic_add_f32: the atomic unit flushes f32 denormals, of BOTH inputs (the memory
    value and the lane's value) and of the result, to a zero of the same sign (FLYDSL_NOTES
    section 8; consistent with LLVM's AMDGPU codegen, which emits the hardware f32 atomic add
    only where f32 denormals may be flushed: in llvm/test/CodeGen/AMDGPU/global-atomics-fp.ll
    the IEEE-denormal variants get a cmpswap loop). The returned old value is the memory word
    as it was, unflushed."""
    a = flush_f32_denormals(old.view(np.float32).reshape(-1))
    r = flush_f32_denormals(a + flush_f32_denormals(np.asarray(v, np.float32).reshape(-1)))
    return r.view(np.uint8).reshape(old.shape)


def _buffer_atomic(op, rt, kind: str, t: Ty, with_cmp: bool = False):
    check_cache_policy(op, rt)
    combine = _f32_add_ftz if (kind, t.text) == ("fadd", "f32") else _combine(kind, t, rt.arch)
    if t.size > 4 or combine is None and not with_cmp:
        raise EmulatorError(f"{op.what}: buffer atomic {kind} on {t} is not modelled")

    def atomic(d, *rest):
        cmp, (r, vo, so) = (rest[0], rest[1:]) if with_cmp else (None, rest)
        L = rt.batch.L
        addr, inr, _, offsets = buffer_addresses(r, vo, so, t.size, L)
        _record_ambiguous(rt, op, vo, offsets, inr)
        addr = addr[:, 0]
        act = rt.batch.mask & inr[:, 0]  # out of range: no effect, returns 0
        where = _buffer_where(rt, r, vo, so, 1)
        read = lambda a, m: rt.mem.read(a, t.size, m, op.what, where)  # noqa: E731
        write = lambda a, data, m: rt.mem.write(a, data, m, op.what, where)  # noqa: E731
        rt.mem.locate(addr, t.size, act, op.what, where)  # all lanes checked before any write
        vals = _lanes(d, rt, t)
        if with_cmp:
            cmps = _lanes(cmp, rt, t)

            def update(old, lanes):
                o = old.view(t.np).reshape(-1)
                return (
                    np.where(o == cmps[lanes], vals[lanes], o)
                    .astype(t.np)
                    .view(np.uint8)
                    .reshape(old.shape)
                )

        else:

            def update(old, lanes):
                return combine(old, vals[lanes])

        old = _atomic(rt, op, read, write, addr, act, t.size, update)
        return old.view(t.np).reshape((L,) + t.eshape)

    return atomic


@handles("rocdl.raw.ptr.buffer.atomic.fadd")
def _buffer_fadd(op, rt):
    return _buffer_atomic(op, rt, "fadd", op.in_tys[0])


@handles("rocdl.raw.ptr.buffer.atomic.fmax")
def _buffer_fmax(op, rt):
    return _buffer_atomic(op, rt, "fmax", op.in_tys[0])


@handles("rocdl.raw.ptr.buffer.atomic.smax", "rocdl.raw.ptr.buffer.atomic.umin")
def _buffer_int_atomic(op, rt):
    return _buffer_atomic(op, rt, "max" if op.name.endswith("smax") else "umin", op.in_tys[0])


@handles("rocdl.raw.ptr.buffer.atomic.cmpswap")
def _buffer_cmpswap(op, rt):
    return _buffer_atomic(op, rt, "cmpswap", op.in_tys[0], with_cmp=True)


@intrinsic("llvm.amdgcn.s.buffer.load")
def _s_buffer_load(op, rt):
    """Scalar (SMEM) buffer load: the hardware ignores bits [1:0] of the byte offset; each
    dword is range-checked like a raw buffer load (offset + 4j + 4 <= num_records) and reads 0
    when out of range. Source: the AMD ISA guides' scalar-memory section (RDNA2 7.2.1, RDNA3
    and RDNA4 8.1.2: the s_buffer_load bound is num_records bytes for stride 0, per dword, out
    of range returns 0; cited in mattias800/prosper#2529). The CDNA3/CDNA4 guides were not
    available here: for gfx942/gfx950 this is the same SMEM unit's rule, not verified."""
    return lambda r, off, aux: buffer_load(
        rt, op, op.out_ty, r, np.asarray(off) & np.uint32(0xFFFFFFFC), np.uint32(0)
    )
