"""fp32 torch reference of the 2-stage MoE (per expert, straight from the definitions)."""

from __future__ import annotations

import torch


def gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Stage 1's activation, silu(gate) * up, in fp32: the one definition every reference
    (whole tensors here, checked rows in moegen.boundary) uses."""
    return torch.nn.functional.silu(gate.float()) * up.float()


def stage1(
    x: torch.Tensor,
    w1: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor | None = None,
    w_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """out[t, s, :] = silu(x[t] . Wg[e]^T) * (x[t] . Wu[e]^T) (* topk_weights[t, s] if given), fp32.

    w_scale [E, 2 * inter]: a quantized w1's per-output-channel scales; each slab is
    dequantized (w1[e] * w_scale[e, :, None]) as it is read. x is passed dequantized.

    x [tokens, model_dim]; w1 [E, 2 * inter, model_dim] (gate rows, then up rows);
    topk_ids [tokens, topk] with e = topk_ids[t, s]. Only the routed experts' slabs are read,
    one at a time in fp32, so a lazily filled (torch.empty) w1 of any size costs one slab.
    """
    tokens, topk = topk_ids.shape
    inter = w1.shape[1] // 2
    xf = x.float()
    out = torch.zeros(tokens, topk, inter, dtype=torch.float32, device=x.device)
    for e in topk_ids.unique().tolist():
        t, s = (topk_ids == e).nonzero(as_tuple=True)
        h = xf[t] @ _slab(w1, e, w_scale).T
        out[t, s] = gated(h[:, :inter], h[:, inter:])
    if topk_weights is not None:
        out = out * topk_weights.float().unsqueeze(-1)
    return out


def _slab(w: torch.Tensor, e: int, w_scale: torch.Tensor | None) -> torch.Tensor:
    """Expert e's weight slab in fp32, dequantized by its per-row scales when given."""
    slab = w[e].float()
    return slab if w_scale is None else slab * w_scale[e].float().unsqueeze(1)


def stage2(
    a2: torch.Tensor,
    w2: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    w_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """out[t, :] = sum_s (a2[t, s] . W2[e]^T) * topk_weights[t, s], fp32.

    a2 [tokens, topk, inter] or [tokens * topk, inter]; w2 [E, model_dim, inter]. Like
    stage1, reads only the routed experts' slabs, one at a time (dequantized by w_scale
    [E, model_dim] when given; a2 is passed dequantized).
    """
    tokens, topk = topk_ids.shape
    af = a2.float().reshape(tokens, topk, -1)
    out = torch.zeros(tokens, w2.shape[1], dtype=torch.float32, device=a2.device)
    for e in topk_ids.unique().tolist():
        t, s = (topk_ids == e).nonzero(as_tuple=True)
        out.index_add_(0, t, (af[t, s] @ _slab(w2, e, w_scale).T) * topk_weights.float()[t, s].unsqueeze(1))
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


def cos_dist(a: torch.Tensor, b: torch.Tensor) -> float:
    """1 - cosine similarity of the flattened tensors (in float64); 0 means same direction."""
    a, b = a.double().flatten(), b.double().flatten()
    return float(1 - torch.nn.functional.cosine_similarity(a, b, dim=0))
