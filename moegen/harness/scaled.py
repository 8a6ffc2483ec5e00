"""Test data for scaled dtypes (fp8 per-token x per-channel; int4 weights with per-group
scales): quantized operands, their scales, and the dequantized values the fp32 reference reads.

Packed weights (VARIANT["weight_pack"] > 1, int4) are kept LOGICAL here: one int4 value per
int8, [E, N, K] (logical_weight), quantized per group of VARIANT's group along K; the kernel's
copy packs and preshuffles them (moegen.harness.execute.store_weight) into stored_shape.

quantize_rows() sends integer dtypes to moegen.runtime.quant (the host helpers users call) and
quantizes float dtypes itself with torch's casts: the test dtypes a YAML edit may declare (fp16
operands with per-token / per-channel scales, tests/test_yaml_dtype.py) quantize to 16-bit
floats, which moegen.runtime.quant's 8-bit formats do not cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from moegen.runtime import launch, quant


def quantize_rows(
    values: torch.Tensor, dtype: torch.dtype | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row quantization along the last dim: scale = amax(row) / max(dtype), q =
    values / scale cast to `dtype` (round to nearest even; |q| <= max by construction).
    Returns (q, float32 scale of shape values.shape[:-1]). Integer dtypes (int8) go through
    moegen.runtime.quant (qmax 127, round half to even onto integers), as does a quant format
    name ("int4": qmax 7, int8 storage)."""
    if isinstance(dtype, str) or not dtype.is_floating_point:
        q = quant.quantize_rows(values.float(), dtype)
        return q.values, q.scale
    top = torch.finfo(dtype).max
    scale = values.float().abs().amax(-1).clamp_min(torch.finfo(torch.float32).tiny) / top
    q = (values.float() / scale.unsqueeze(-1)).clamp(-top, top).to(dtype)
    return q, scale


def pack(variant: Mapping[str, Any]) -> int:
    """Weight values per stored element (int4: 2)."""
    return variant.get("weight_pack", 1)


def logical_weight(
    variant: Mapping[str, Any], shape: tuple[int, ...], dtype: torch.dtype, device: str
) -> torch.Tensor:
    """torch.empty logical weight [E, N, K]: the stored dtype, or int8 values of packed int4."""
    return torch.empty(shape, dtype=torch.int8 if pack(variant) > 1 else dtype, device=device)


def stored_shape(variant: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The kernel's weight shape of a logical [E, N, K] one: K / weight_pack stored elements."""
    return (*shape[:-1], shape[-1] // pack(variant))


class Scales:
    """The scale tensors of one case, by kind (None where the dtype declares none), filled with
    ones until quantize() writes the rows it fills; kwargs() is what prepare() takes."""

    def __init__(self, variant: Mapping[str, Any], act: torch.Tensor, w: torch.Tensor):
        self.layouts = launch.scale_layouts(
            variant, tuple(act.shape), stored_shape(variant, tuple(w.shape))
        )
        # ones until filled; per-group scales (up to 1/8 of the weight's bytes) stay virtual
        # like the weight: only the filled rows are read
        self.tensors = {
            name: (torch.empty if s.kind == "per_group" else torch.ones)(
                s.shape, dtype=getattr(torch, s.dtype), device=act.device
            )
            for name, s in self.layouts.items()
        }
        self.act = self._of("per_token")
        per_group = self._of("per_group")
        self.weight = self._of("per_channel") if per_group is None else per_group
        # per_group: its group along K; the kernel multiplies bf16(value * scale) (the
        # activation dtype's rounding of an exact f32 product), so that is what the
        # reference reads (moegen.harness.verdict, DEQUANTIZED_WEIGHTS_RTOL)
        self.group = next(
            (g["group"] for g in variant.get("scales", ()) if g["kind"] == "per_group"), 0
        )
        self.dequant_dtype = act.dtype if self.group else None
        # packed int4 weights with a per-row (per_channel) scale quantize onto int4's range
        self.weight_format = "int4" if pack(variant) > 1 and not self.group else None

    def _of(self, kind: str) -> torch.Tensor | None:
        return next((self.tensors[n] for n, s in self.layouts.items() if s.kind == kind), None)

    def kwargs(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors)


def fill(
    t: torch.Tensor,
    scale: torch.Tensor | None,
    index: tuple,
    values: torch.Tensor,
    group: int = 0,
    weight_format: str | None = None,
) -> None:
    """t[index] = values in t's dtype: quantized per row (last dim) into scale[index] when the
    operand is scaled, per `group` values along K with a group (int4: t holds int8 values in
    [-7, 7], moegen.runtime.quant.quantize_per_group with the scale's dtype), else a plain cast.
    weight_format "int4" (packed int4 weights with a per-row scale, W4A8): t holds int8 values
    quantized per row in [-7, 7] (Scales.weight_format says which)."""
    if scale is None:
        t[index] = values.to(t.device, t.dtype)
        return
    if group:
        k = values.shape[-1]
        q = quant.quantize_per_group(
            values.reshape(1, -1, k), "int4", group, scale_dtype=scale.dtype
        )
        t[index] = q.values.view(values.shape).to(t.device)
        scale[index] = q.scale.view(*values.shape[:-1], k // group).to(scale.device, scale.dtype)
        return
    q, s = quantize_rows(values, "int4" if weight_format == "int4" else t.dtype)
    t[index] = q.to(t.device)
    scale[index] = s.to(scale.device)


def dequantized(
    rows: torch.Tensor,
    scale: torch.Tensor | None,
    group: int = 0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """fp32 values of stored rows [.., K] with their per-row scales [..] (or none), or with
    per-group scales [.., K / group], each value * scale rounded to `dtype` when given (what a
    kernel that dequantizes into that dtype multiplies)."""
    if group:
        out = quant.dequantize(rows.cpu(), scale.float().cpu(), group)
        return out if dtype is None else out.to(dtype).float()
    out = rows.float().cpu()
    return out if scale is None else out * scale.float().cpu().unsqueeze(-1)


@dataclass(frozen=True)
class GroupDequantized:
    """A logical int4 weight and its per-group scales as moegen.runtime.reference reads a
    weight: [e] is expert e's slab dequantized (scaled.dequantized), one slab at a time."""

    values: torch.Tensor
    scale: torch.Tensor
    group: int
    dtype: torch.dtype | None

    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def __getitem__(self, e: int) -> torch.Tensor:
        return dequantized(self.values[e], self.scale[e], self.group, self.dtype)
