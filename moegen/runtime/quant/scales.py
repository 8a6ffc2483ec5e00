"""Quantization with scales, and back: per-token / per-(token, slot) activation rows,
per-output-channel and per-group weights, and int8smooth's per-expert smoothing.

One rule for every scheme: a scale covers a run of values along K (a whole row, or one
group of `group` values), scale = amax(|run|) / qmax (a run of zeros gets scale 1, as upstream
does), values = round(x / scale) clamped to [-qmax, qmax] in the format's storage. The scale
is rounded to `scale_dtype` BEFORE the values are computed, so `values * scale` with the
stored scale is what the kernel reconstructs, and `dequantize` is exact for it.

Upstream facts (cited, not copied):
- per-token / per-channel: aiter aiter/ops/quant.py `pertoken_quant` (amax / dtypeMax, zero
  scale -> 1). Its torch reference converts with `.to(int8)`, which truncates toward zero; we
  round half to even, so the dequantization error is at most half a step (a kernel only reads
  what the host wrote, so the choice is the host's).
- per-group int4: aiter `per_1x32_i4_quant` (group 32 along K, round, clamp to [-7, 7], bf16
  scales): pass scale_dtype=torch.bfloat16 to store what it stores.
- int8smooth: `x_route[t, s] = x[t] * smooth[topk_ids[t, s]]` (elementwise over K, smooth
  [E, K]), then one int8 scale per (token, slot) row. FlyDSL's moe_gemm_2stage stage 1 reads
  those rows SLOT-MAJOR, row = slot * tokens + token, for both the values and the scales
  (FlyDSL kernels/moe/moe_gemm_2stage/gemm1.py, tests/kernels/test_moe_gemm_2stage.py
  `_build_stage1_int8smooth`). Upstream is not uniform: aiter's CK `moe_smoothquant_fwd`
  writes token-major [tokens, topk, K] (op_tests/test_smoothquant.py), and aiter/ops/quant.py
  `moe_smooth_per_token_scaled_quant` writes slot-major on one path; we follow FlyDSL, the
  kernel family moegen ports (slot_major=False gives token-major). aiter's torch_moe smooths
  the same way
  (aiter/fused_moe.py, `sub_tokens * fc1_smooth_scale[E_id]`). Stage 2 folds its smoothing
  into A2 [tokens, topk, inter] before a per-row quantization in token-major order
  (`_run_gemm2_int8smooth`).

Weights may be huge torch.empty tensors of which only routed experts hold data: every
weight helper works one expert slab at a time and takes `experts=` (the slabs to do) and
`out=` (where to write), so untouched slabs are never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from moegen.runtime.quant.formats import QuantFormat, quant_format

DEFAULT_GROUP = 32
"""Per-group weight quantization's group along K (aiter/FlyDSL W4A16: group_size=32)."""

CHUNK_ROWS = 8192
"""Activation rows quantized at once: bounds the fp32 temporaries of huge expanded inputs."""


@dataclass(frozen=True)
class Quantized:
    """Quantized values and their fp32 scales.

    values [..., K] in fmt.storage (int4: unpacked, one value per int8); scale fp32, shape
    values.shape[:-1] (one per row: per token, per (token, slot), per output channel) or
    values.shape[:-1] + (K // group,) when `group` is set. Indexing w[e] gives expert e's slab
    dequantized to fp32, so a Quantized weight can stand in for a weight tensor in
    moegen.runtime.reference (which reads only the routed experts' slabs)."""

    values: torch.Tensor
    scale: torch.Tensor
    fmt: QuantFormat
    group: int | None = None

    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def dequantize(self) -> torch.Tensor:
        """All values as fp32 (values * their scale)."""
        return dequantize(self.values, self.scale, self.group)

    def __getitem__(self, index) -> torch.Tensor:
        return dequantize(self.values[index], self.scale[index], self.group)


def dequantize(values: torch.Tensor, scale: torch.Tensor, group: int | None = None) -> torch.Tensor:
    """fp32 values * scale: scale per row (shape values.shape[:-1]) or, with `group`, per
    group of `group` values along K (shape values.shape[:-1] + (K // group,))."""
    k = values.shape[-1]
    if group is None:
        want = tuple(values.shape[:-1])
    else:
        _check_group(k, group, "values")
        want = tuple(values.shape[:-1]) + (k // group,)
    if tuple(scale.shape) != want:
        raise ValueError(
            f"scale has shape {tuple(scale.shape)} but values {tuple(values.shape)} with "
            f"group={group} need {want}; pass the scale the quantizer returned with these values"
        )
    vf = values.float()
    if group is None:
        return vf * scale.float().unsqueeze(-1)
    return (vf.unflatten(-1, (k // group, group)) * scale.float().unsqueeze(-1)).flatten(-2)


def quantize_rows(
    x: torch.Tensor,
    fmt: str | torch.dtype | QuantFormat,
    *,
    scale_dtype: torch.dtype = torch.float32,
    out: Quantized | None = None,
) -> Quantized:
    """Per-token (per-row) quantization: one scale per row of x [..., K] (e.g. x [tokens, K]
    -> values [tokens, K], scale [tokens]). Rows are done CHUNK_ROWS at a time."""
    f = quant_format(fmt)
    _check_floating(x, "x")
    out = _empty(x.shape, f, x.shape[:-1], x.device) if out is None else out
    _check_out(out, x.shape, x.shape[:-1], f)
    k = x.shape[-1]
    rows, vals, scales = x.reshape(-1, k), out.values.view(-1, k), out.scale.view(-1)
    for r in range(0, rows.shape[0], CHUNK_ROWS):
        q, s = _quantize(rows[r : r + CHUNK_ROWS], f, None, scale_dtype)
        vals[r : r + CHUNK_ROWS], scales[r : r + CHUNK_ROWS] = q, s
    return out


def quantize_per_channel(
    w: torch.Tensor,
    fmt: str | torch.dtype | QuantFormat,
    *,
    experts: Iterable[int] | None = None,
    scale_dtype: torch.dtype = torch.float32,
    out: Quantized | None = None,
) -> Quantized:
    """Per-output-channel weight quantization: w [E, N, K] -> values [E, N, K], scale [E, N].

    `experts`: only these slabs are quantized (default: all); the others of a fresh `out`
    stay as torch.empty left them."""
    return _quantize_experts(w, quant_format(fmt), None, experts, scale_dtype, out)


def quantize_per_group(
    w: torch.Tensor,
    fmt: str | torch.dtype | QuantFormat,
    group: int = DEFAULT_GROUP,
    *,
    experts: Iterable[int] | None = None,
    scale_dtype: torch.dtype = torch.float32,
    out: Quantized | None = None,
) -> Quantized:
    """Per-group weight quantization along K: w [E, N, K] -> values [E, N, K],
    scale [E, N, K // group]. `experts` and `out` as in quantize_per_channel."""
    return _quantize_experts(w, quant_format(fmt), group, experts, scale_dtype, out)


def expanded_row(token: int, slot: int, tokens: int) -> int:
    """The row of (token, slot) in slot-major expanded activations [topk * tokens, K]."""
    return slot * tokens + token


def smooth(x: torch.Tensor, smoothing: torch.Tensor, topk_ids: torch.Tensor) -> torch.Tensor:
    """fp32 [tokens, topk, K]: x[t] * smoothing[topk_ids[t, s]] (x [tokens, K]), or
    x[t, s] * smoothing[topk_ids[t, s]] (x [tokens, topk, K], stage 2's activations)."""
    _check_smooth(x, smoothing, topk_ids)
    rows = x.float().unsqueeze(1) if x.dim() == 2 else x.float()
    return rows * smoothing.float()[topk_ids.long()]


def quantize_smooth(
    x: torch.Tensor,
    smoothing: torch.Tensor,
    topk_ids: torch.Tensor,
    fmt: str | torch.dtype | QuantFormat = "int8",
    *,
    slot_major: bool = True,
    scale_dtype: torch.dtype = torch.float32,
) -> Quantized:
    """int8smooth activations: smooth(x, smoothing, topk_ids), one scale per (token, slot)
    row. Rows [topk * tokens, K] slot-major (row = slot * tokens + token, stage 1's layout)
    or, with slot_major=False, token-major (row = token * topk + slot, stage 2's layout);
    scale [topk * tokens] in the same order. Done a chunk of one slot's tokens at a time, so
    the fp32 expansion of a huge batch is never materialized."""
    f = quant_format(fmt)
    _check_smooth(x, smoothing, topk_ids)
    tokens, topk = topk_ids.shape
    k = x.shape[-1]
    out = _empty((topk * tokens, k), f, (topk * tokens,), x.device)
    vals = out.values.view(topk, tokens, k) if slot_major else out.values.view(tokens, topk, k)
    scales = out.scale.view(topk, tokens) if slot_major else out.scale.view(tokens, topk)
    ids = topk_ids.long()
    for s in range(topk):
        for t in range(0, tokens, CHUNK_ROWS):
            span = slice(t, t + CHUNK_ROWS)
            rows = x[span] if x.dim() == 2 else x[span, s]
            q, sc = _quantize(rows.float() * smoothing[ids[span, s]].float(), f, None, scale_dtype)
            if slot_major:
                vals[s, span], scales[s, span] = q, sc
            else:
                vals[span, s], scales[span, s] = q, sc
    return out


def _quantize(
    x: torch.Tensor, f: QuantFormat, group: int | None, scale_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, fp32 scale) of x [..., K]: one scale per row, or per `group` values along K."""
    k = x.shape[-1]
    runs = x.float().unflatten(-1, (k // group, group) if group else (1, k))
    amax = runs.abs().amax(-1)
    if not torch.isfinite(amax).all():
        raise ValueError(
            f"x of shape {tuple(x.shape)} holds inf or NaN; quantize finite values only"
        )
    scale = (amax / f.qmax).to(scale_dtype).float()
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    y = (runs / scale.unsqueeze(-1)).clamp(-f.qmax, f.qmax)
    q = (y.round() if f.integer else y).to(f.storage).flatten(-2)
    return q, scale if group else scale.squeeze(-1)


def _quantize_experts(w, f, group, experts, scale_dtype, out) -> Quantized:
    _check_floating(w, "w")
    if w.dim() != 3:
        raise ValueError(
            f"w has shape {tuple(w.shape)}; expert weights are [E, N, K] (w1 [E, 2 * inter, "
            f"model_dim], w2 [E, model_dim, inter]); add the expert dim with w.unsqueeze(0)"
        )
    e_count, n, k = w.shape
    if group is not None:
        _check_group(k, group, "w")
    scale_shape = (e_count, n) + ((k // group,) if group else ())
    out = _empty(w.shape, f, scale_shape, w.device) if out is None else out
    _check_out(out, w.shape, scale_shape, f)
    out = Quantized(out.values, out.scale, f, group)
    for e in _expert_list(experts, e_count):
        out.values[e], out.scale[e] = _quantize(w[e], f, group, scale_dtype)
    return out


def _expert_list(experts: Iterable[int] | None, e_count: int) -> list[int]:
    chosen = range(e_count) if experts is None else [int(e) for e in experts]
    bad = [e for e in chosen if not 0 <= e < e_count]
    if bad:
        raise ValueError(f"experts {bad} are outside [0, {e_count}); pass expert ids of w")
    return sorted(set(chosen))


def _empty(shape, f: QuantFormat, scale_shape, device) -> Quantized:
    return Quantized(
        torch.empty(tuple(shape), dtype=f.storage, device=device),
        torch.empty(tuple(scale_shape), dtype=torch.float32, device=device),
        f,
    )


def _check_out(out: Quantized, shape, scale_shape, f: QuantFormat) -> None:
    if tuple(out.values.shape) != tuple(shape) or out.values.dtype != f.storage:
        raise ValueError(
            f"out.values is {out.values.dtype} {tuple(out.values.shape)} but this needs "
            f"{f.storage} {tuple(shape)}; allocate it with torch.empty of that shape and dtype"
        )
    if tuple(out.scale.shape) != tuple(scale_shape) or out.scale.dtype != torch.float32:
        raise ValueError(
            f"out.scale is {out.scale.dtype} {tuple(out.scale.shape)} but this needs "
            f"torch.float32 {tuple(scale_shape)}; allocate it with torch.empty of that shape"
        )


def _check_floating(x: torch.Tensor, what: str) -> None:
    if not x.is_floating_point() or x.element_size() == 1:
        raise ValueError(
            f"{what} is {x.dtype} of shape {tuple(x.shape)}; quantize the unquantized values "
            f"(float32, bfloat16 or float16)"
        )


def _check_group(k: int, group: int, what: str) -> None:
    if group <= 0 or k % group:
        raise ValueError(
            f"{what}'s K (last dim) {k} is not divisible by group={group}; use a group that "
            f"divides K (default {DEFAULT_GROUP}) or pad K"
        )


def _check_smooth(x: torch.Tensor, smoothing: torch.Tensor, topk_ids: torch.Tensor) -> None:
    _check_floating(x, "x")
    if topk_ids.dim() != 2 or topk_ids.is_floating_point():
        raise ValueError(
            f"topk_ids is {topk_ids.dtype} {tuple(topk_ids.shape)}; it must be integer "
            f"[tokens, topk] expert ids"
        )
    tokens, topk = topk_ids.shape
    k = x.shape[-1]
    if tuple(x.shape) not in ((tokens, k), (tokens, topk, k)):
        raise ValueError(
            f"x has shape {tuple(x.shape)} but topk_ids {tuple(topk_ids.shape)} needs x "
            f"[{tokens}, K] (stage 1) or [{tokens}, {topk}, K] (stage 2)"
        )
    if smoothing.dim() != 2 or smoothing.shape[1] != k:
        raise ValueError(
            f"smoothing has shape {tuple(smoothing.shape)}; it must be [E, K] = [E, {k}], "
            f"one smoothing vector per expert over x's K"
        )
    if (
        topk_ids.numel()
        and not 0 <= int(topk_ids.min()) <= int(topk_ids.max()) < smoothing.shape[0]
    ):
        raise ValueError(
            f"topk_ids name experts outside [0, {smoothing.shape[0]}) of smoothing "
            f"{tuple(smoothing.shape)}; give one smoothing row per expert"
        )
