"""Test data for scaled dtypes (fp8 per-token x per-channel): quantized operands, their scales,
and the dequantized values the fp32 reference reads.

replaced by moegen.runtime.quant at merge: quantize_rows() is the few lines the boundary tests
need now (torch's float8 casts); the host quantization helpers of issue 11 live in
moegen.runtime.quant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from moegen.runtime import launch, quant


# replaced by moegen.runtime.quant at merge
def quantize_rows(values: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row quantization along the last dim: scale = amax(row) / max(dtype), q =
    values / scale cast to `dtype` (round to nearest even; |q| <= max by construction).
    Returns (q, float32 scale of shape values.shape[:-1]). Integer dtypes (int8) go through
    moegen.runtime.quant (qmax 127, round half to even onto integers)."""
    if not dtype.is_floating_point:
        q = quant.quantize_rows(values.float(), dtype)
        return q.values, q.scale
    top = torch.finfo(dtype).max
    scale = values.float().abs().amax(-1).clamp_min(torch.finfo(torch.float32).tiny) / top
    q = (values.float() / scale.unsqueeze(-1)).clamp(-top, top).to(dtype)
    return q, scale


class Scales:
    """The scale tensors of one case, by kind (None where the dtype declares none), filled with
    ones until quantize() writes the rows it fills; kwargs() is what prepare() takes."""

    def __init__(self, variant: Mapping[str, Any], act: torch.Tensor, w: torch.Tensor):
        self.layouts = launch.scale_layouts(variant, tuple(act.shape), tuple(w.shape))
        self.tensors = {
            name: torch.ones(s.shape, dtype=getattr(torch, s.dtype), device=act.device)
            for name, s in self.layouts.items()
        }
        self.act = self._of("per_token")
        self.weight = self._of("per_channel")

    def _of(self, kind: str) -> torch.Tensor | None:
        return next((self.tensors[n] for n, s in self.layouts.items() if s.kind == kind), None)

    def kwargs(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors)


def fill(
    t: torch.Tensor,
    scale: torch.Tensor | None,
    index: tuple,
    values: torch.Tensor,
) -> None:
    """t[index] = values in t's dtype: quantized per row (last dim) into scale[index] when the
    operand is scaled, else a plain cast."""
    if scale is None:
        t[index] = values.to(t.device, t.dtype)
        return
    q, s = quantize_rows(values, t.dtype)
    t[index] = q.to(t.device)
    scale[index] = s.to(scale.device)


def dequantized(rows: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """fp32 values of stored rows [.., K] with their per-row scales [..] (or none)."""
    out = rows.float().cpu()
    return out if scale is None else out * scale.float().cpu().unsqueeze(-1)
