"""fp32 torch reference of the 2-stage MoE (per expert, straight from the definitions)."""

from __future__ import annotations

import torch

from moegen.runtime.quant import Quantized, quantize_rows, quantize_smooth


def gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Stage 1's activation, silu(gate) * up, in fp32: the one definition every reference
    (whole tensors here, checked rows in moegen.boundary) uses."""
    return torch.nn.functional.silu(gate.float()) * up.float()


def stage1(
    x: torch.Tensor,
    w1: torch.Tensor | Quantized,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor | None = None,
    w_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """out[t, s, :] = silu(x[t] . Wg[e]^T) * (x[t] . Wu[e]^T) (* topk_weights[t, s] if given), fp32.

    x [tokens, model_dim], or [tokens, topk, model_dim] with its own row per (token, slot)
    (x[t, s] replaces x[t]: int8smooth's expanded activations); w1 [E, 2 * inter, model_dim]
    (gate rows, then up rows), a tensor or a quant.Quantized (each slab dequantized when read);
    w_scale [E, 2 * inter]: a quantized w1 tensor's per-output-channel scales, each slab then
    dequantized (w1[e] * w_scale[e, :, None]) as it is read; x is passed dequantized.
    topk_ids [tokens, topk] with e = topk_ids[t, s]. Only the routed experts' slabs are read,
    one at a time in fp32, so a lazily filled (torch.empty) w1 of any size costs one slab.
    """
    tokens, topk = topk_ids.shape
    inter = w1.shape[1] // 2
    xf = x.float()
    out = torch.zeros(tokens, topk, inter, dtype=torch.float32, device=x.device)
    for e in topk_ids.unique().tolist():
        t, s = (topk_ids == e).nonzero(as_tuple=True)
        h = (xf[t, s] if xf.dim() == 3 else xf[t]) @ _slab(w1, e, w_scale).T
        out[t, s] = gated(h[:, :inter], h[:, inter:])
    if topk_weights is not None:
        out = out * topk_weights.float().unsqueeze(-1)
    return out


def _slab(w: torch.Tensor | Quantized, e: int, w_scale: torch.Tensor | None) -> torch.Tensor:
    """Expert e's weight slab in fp32 (a Quantized dequantizes it), scaled by its per-row
    scales when given."""
    slab = w[e].float()
    return slab if w_scale is None else slab * w_scale[e].float().unsqueeze(1)


def stage2(
    a2: torch.Tensor,
    w2: torch.Tensor | Quantized,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    w_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """out[t, :] = sum_s (a2[t, s] . W2[e]^T) * topk_weights[t, s], fp32.

    a2 [tokens, topk, inter] or [tokens * topk, inter]; w2 [E, model_dim, inter] (a tensor or
    a quant.Quantized). Like stage1, reads only the routed experts' slabs, one at a time
    (dequantized by w_scale [E, model_dim] when given; a2 is passed dequantized).
    """
    tokens, topk = topk_ids.shape
    af = a2.float().reshape(tokens, topk, -1)
    out = torch.zeros(tokens, w2.shape[1], dtype=torch.float32, device=a2.device)
    for e in topk_ids.unique().tolist():
        t, s = (topk_ids == e).nonzero(as_tuple=True)
        rows = (af[t, s] @ _slab(w2, e, w_scale).T) * topk_weights.float()[t, s].unsqueeze(1)
        out.index_add_(0, t, rows)
    return out


def moe(
    x: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
) -> torch.Tensor:
    """The whole MoE layer: stage 2 of stage 1 (routing weight applied once, in stage 2)."""
    return stage2(stage1(x, w1, topk_ids), w2, topk_ids, topk_weights)


def stage1_dequantized(
    x: Quantized | torch.Tensor,
    w1: Quantized | torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """stage1 on dequantized values, fp32 [tokens, topk, inter]: what a kernel of any dtype is
    judged against. x: per-token rows [tokens, model_dim], or int8smooth's expanded rows
    [topk * tokens, model_dim] in slot-major order (row = slot * tokens + token, as
    quant.quantize_smooth writes them); quantized or not."""
    tokens, topk = topk_ids.shape
    xf = x.dequantize() if isinstance(x, Quantized) else x.float()
    if xf.dim() != 2 or xf.shape[0] not in (tokens, topk * tokens):
        raise ValueError(
            f"x has shape {tuple(xf.shape)} but topk_ids {tuple(topk_ids.shape)} needs "
            f"[{tokens}, K] (per token) or [{topk * tokens}, K] (slot-major, per (token, slot))"
        )
    if xf.shape[0] != tokens:
        xf = xf.view(topk, tokens, -1).transpose(0, 1)
    return stage1(xf, w1, topk_ids, topk_weights)


def moe_dequantized(
    x: Quantized | torch.Tensor,
    w1: Quantized | torch.Tensor,
    w2: Quantized | torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    a2_fmt=None,
    smoothing2: torch.Tensor | None = None,
) -> torch.Tensor:
    """The whole layer on dequantized values, fp32 [tokens, model_dim]. Between the stages,
    stage 1's fp32 output is quantized per (token, slot) row in a2_fmt (a quant format name
    or dtype; None keeps it fp32), after the per-expert smoothing2 [E, inter] if given
    (int8smooth: a2_fmt defaults to int8 then), then dequantized for stage 2, as the quantized
    pipeline hands it over."""
    a2 = stage1_dequantized(x, w1, topk_ids)
    if smoothing2 is not None:
        a2 = quantize_smooth(
            a2, smoothing2, topk_ids, a2_fmt or "int8", slot_major=False
        ).dequantize()
    elif a2_fmt is not None:
        a2 = quantize_rows(a2, a2_fmt).dequantize()
    return stage2(a2, w2, topk_ids, topk_weights)


def cos_dist(a: torch.Tensor, b: torch.Tensor) -> float:
    """1 - cosine similarity of the flattened tensors (in float64); 0 means same direction."""
    a, b = a.double().flatten(), b.double().flatten()
    return float(1 - torch.nn.functional.cosine_similarity(a, b, dim=0))
