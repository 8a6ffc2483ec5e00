"""Vector, struct and reinterpreting ops: bitcast / ptr casts, extract/insert element,
shufflevector, extract/insert value."""

from __future__ import annotations

import numpy as np

from ..errors import EmulatorError
from ..types import signed
from . import handles


@handles("llvm.bitcast", "llvm.ptrtoint", "llvm.inttoptr", "llvm.addrspacecast")
def _cast(op, rt):
    src, t = op.in_tys[0], op.out_ty
    if op.name != "llvm.bitcast" and src.eshape == () and t.eshape == ():
        return lambda a: np.asarray(a).astype(t.np)  # integer <-> pointer, zero-extend/truncate
    if src.np == t.np and src.eshape == t.eshape:
        return lambda a: a
    if np.bool_ in (src.np, t.np):
        raise EmulatorError(f"{op.what}: bitcast {src} -> {t} (i1 packing) is not modelled")

    def bitcast(a):
        a = np.asarray(a)
        lanes = a.shape[: a.ndim - len(src.eshape)]
        raw = np.ascontiguousarray(a.reshape(lanes + (-1,))).view(np.uint8)
        return raw.view(t.np).reshape(lanes + t.eshape)

    return bitcast


@handles("llvm.extractelement")
def _extract(op, rt):
    def extract(v, i):
        i = signed(i).astype(np.int64)
        if i.ndim == 0:
            return np.asarray(v)[..., int(i)]
        v = np.broadcast_to(v, i.shape + np.shape(v)[-1:])
        return np.take_along_axis(v, i[..., None], -1)[..., 0]

    return extract


@handles("llvm.insertelement")
def _insert(op, rt):
    def insert(v, x, i):
        i = signed(i).astype(np.int64)
        shape = np.broadcast_shapes(np.shape(v)[:-1], np.shape(x), i.shape) + np.shape(v)[-1:]
        r = np.array(np.broadcast_to(v, shape))
        if i.ndim == 0:
            r[..., int(i)] = x
        else:
            lanes = shape[:-1]
            np.put_along_axis(
                r, np.broadcast_to(i, lanes)[..., None], np.broadcast_to(x, lanes)[..., None], -1
            )
        return r

    return insert


@handles("llvm.shufflevector")
def _shuffle(op, rt):
    mask = [max(int(m), 0) for m in op.attrs["mask"]]  # -1 (poison lane) reads element 0

    def shuffle(a, b):
        a, b = np.asarray(a), np.asarray(b)
        lanes = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        both = np.concatenate(
            [np.broadcast_to(a, lanes + a.shape[-1:]), np.broadcast_to(b, lanes + b.shape[-1:])], -1
        )
        return both[..., mask]

    return shuffle


@handles("llvm.extractvalue")
def _extractvalue(op, rt):
    pos = [int(p) for p in op.attrs["position"]]

    def extract(s):
        for p in pos:
            s = s[p]
        return s

    return extract


@handles("llvm.insertvalue")
def _insertvalue(op, rt):
    pos = [int(p) for p in op.attrs["position"]]

    def insert(s, x):
        def rec(s, ps):
            if not ps:
                return x
            items = list(s)
            items[ps[0]] = rec(items[ps[0]], ps[1:])
            return tuple(items)

        return rec(s, pos)

    return insert
