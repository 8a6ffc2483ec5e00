"""FlyDSL host ABI: launcher runtime arguments -> host function parameter values.

FlyDSL 0.5 passes a torch tensor (dynamic layout, the default) as `!llvm.ptr<1>` followed by
`struct<packed (struct<packed (i32 x rank)>, struct<packed (i64 per non-unit-stride dim)>)>`
(the stride struct is absent when every stride is 1); scalars (fx.Int32 ...) as themselves;
the trailing stream `!llvm.ptr` gets 0. Constexpr arguments do not appear.
"""

from __future__ import annotations

import numpy as np

from .errors import EmulatorError
from .numerics import f32_to_bf16
from .types import Ty


def host_values(runtime_args: list, host_tys: list[Ty]) -> list:
    import torch

    vals, i = [], 0
    for k, a in enumerate(runtime_args):
        if i >= len(host_tys):
            raise EmulatorError(
                f"more runtime arguments ({len(runtime_args)}) than the host launcher takes"
            )
        t = host_tys[i]
        if isinstance(a, torch.Tensor):
            if t.kind != "p":
                raise EmulatorError(
                    f"runtime argument {k} is a tensor but host parameter {i} is {t}"
                )
            vals.append(np.uint64(a.data_ptr()))
            i += 1
            if i < len(host_tys) and host_tys[i].kind == "s":
                vals.append(_layout(a, host_tys[i], k))
                i += 1
        else:
            vals.append(
                f32_to_bf16(np.float32(a))
                if t.kind == "bf16"
                else np.array(int(a) & ((1 << t.bits) - 1) if t.kind == "i" else a, t.np)
            )
            i += 1
    while i < len(host_tys):  # the stream pointer
        vals.append(np.uint64(0))
        i += 1
    return vals


def _layout(a, st: Ty, k: int) -> tuple:
    shapes = st.fields[0].fields
    strides_t = st.fields[1].fields if len(st.fields) > 1 else ()
    unit = [d for d in range(a.dim()) if a.stride(d) == 1]
    dyn_strides = [a.stride(d) for d in range(a.dim()) if d not in unit[-1:]]
    if len(shapes) != a.dim() or len(strides_t) != len(dyn_strides):
        raise EmulatorError(
            f"runtime argument {k}: layout {st} does not match tensor shape {tuple(a.shape)} "
            f"stride {a.stride()}"
        )
    return (
        tuple(np.array(s, f.np) for s, f in zip(a.shape, shapes)),
        tuple(np.array(s, f.np) for s, f in zip(dyn_strides, strides_t)),
    )
