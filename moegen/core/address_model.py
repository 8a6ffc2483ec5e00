"""The address model: which bytes each 32-bit buffer offset of a variant must reach.

An AMD buffer resource (V#) adds a 32-bit unsigned byte offset to its 48-bit base, so every tensor
a kernel reads or writes through ONE resource must span fewer than 2**32 bytes from that base, or
offsets wrap and the kernel silently touches the wrong bytes. Index math done in signed i32 breaks
earlier, at 2**31. This module is the single source of truth for those lines: the launcher guards
of generated modules (`check`), the sweep points of the generated boundary tests (`sweep`), safe
dispatch and `moegen boundary` all read it.

Each backend has its own line per target (`offset_line`):
  - FlyDSL (AMD only) addresses every tensor through a buffer resource: 2**32 bytes from its base.
  - Triton computes element offsets in signed i32 from one base pointer (whole_tensor: the
    tensor's base; per_expert: a 64-bit expert base, then i32 offsets inside the slab), so the
    line is 2**31 ELEMENTS: 4 GiB of 16-bit data, 2 GiB of 8-bit, 8 GiB of float32. On an AMD
    target Triton may also lower those loads and stores to buffer ops, whose offsets stop at
    2**32 BYTES; the line there is the smaller of the two (for float32 partial sums the buffer
    line, 4 GiB, comes first). On NVIDIA the pointer itself is 64-bit: only the i32 line holds.

Everything derives from a variant's declared bits (`act_bits`, `weight_bits`, `out_bits`), never
from dtype names. A variant is the plain dict a generated module keeps as VARIANT
(`Variant.record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from moegen.core.vocabulary import GIB, ROUTING_BYTES, SCALE_DTYPE_BITS

U32_LINE = 2**32  # buffer offsets are 32-bit unsigned byte offsets
I32_LINE = 2**31  # where signed 32-bit index math overflows
F32_BITS = 32
ID_BITS = ROUTING_BYTES * 8  # the routing tensors' elements


@dataclass(frozen=True)
class Problem:
    """One MoE problem: E experts, hidden size model_dim, expert width inter, tokens x topk."""

    experts: int
    model_dim: int
    inter: int
    tokens: int
    topk: int


@dataclass(frozen=True)
class TensorSpan:
    """One tensor the kernel addresses, and the reach its 32-bit offsets need."""

    tensor: str
    shape: tuple[int, ...]
    resource: str  # what one buffer resource covers
    span_bytes: int  # largest byte offset + 1 that one resource must reach
    signed: bool = False  # the kernel's offset math is signed i32 (line at 2**31)
    # span = per_inter * inter + fixed: lets the model solve for the first failing inter
    per_inter: int = 0
    limit_bytes: int = 0  # a backend's own line (offset_line); 0: the buffer / i32 line above
    line_text: str = ""  # how a guard message names that line
    via: str = "buffer resource"  # what the offsets start from

    @property
    def limit(self) -> int:
        if self.limit_bytes:
            return self.limit_bytes
        return I32_LINE if self.signed else U32_LINE

    @property
    def fits(self) -> bool:
        return self.span_bytes < self.limit

    @property
    def fits_signed(self) -> bool:
        return self.span_bytes < I32_LINE


def storage_bytes(elems: int, bits: int) -> int:
    """Bytes that `elems` values of `bits` bits each occupy (packed 4-bit values: 2 per byte)."""
    return (elems * bits + 7) // 8


def offset_line(v: Mapping[str, Any], elem_bits: int) -> tuple[int, str]:
    """(bytes, description) of the line a tensor of `elem_bits` elements must stay below in
    variant `v`'s kernels, or (0, "") for the FlyDSL buffer line (2**32 bytes).

    Triton: signed i32 element offsets break at 2**31 elements; an AMD target may also use
    buffer ops (2**32 bytes); the smaller line holds."""
    if v.get("backend", "flydsl") != "triton":
        return 0, ""
    elem_line = I32_LINE * elem_bits // 8
    if "amd" in v.get("targets", {}).values() and U32_LINE < elem_line:
        return U32_LINE, "2**32 (32-bit byte offset of an AMD buffer op)"
    return elem_line, f"2**31 elements (signed i32 element offsets, {elem_bits}-bit elements)"


def _for_backend(v: Mapping[str, Any], s: TensorSpan, elem_bits: int) -> TensorSpan:
    limit, text = offset_line(v, elem_bits)
    if not limit:
        return s
    return TensorSpan(
        s.tensor,
        s.shape,
        s.resource,
        s.span_bytes,
        s.signed,
        s.per_inter,
        limit_bytes=limit,
        line_text=text,
        via="base pointer",
    )


def max_padded_rows(p: Problem, tile_m: int) -> int:
    """Rows of the sorted routing buffers: each expert's rows padded to a multiple of tile_m."""
    return p.tokens * p.topk + p.experts * tile_m - p.topk


def spans(v: Mapping[str, Any], p: Problem) -> list[TensorSpan]:
    """Every tensor the variant's kernels address for problem `p`, with its 32-bit reach."""
    e, d, i, t, k = p.experts, p.model_dim, p.inter, p.tokens, p.topk
    ab, wb = v["act_bits"], v["weight_bits"]
    rows = max_padded_rows(p, v["tile_m"])
    per_expert = v["addressing"] == "per_expert"
    out: list[TensorSpan] = []
    if v["stage"] == 1:
        n_w = 2 * i  # gate and up rows
        xr = t * k if v.get("act_rows") == "expanded" else t  # expanded: one row per (token, slot)
        out.append(TensorSpan("x", (xr, d), "whole tensor", storage_bytes(xr * d, ab)))
        w_shape = (e, n_w, d)
        w_elems = n_w * d if per_expert else e * n_w * d
        out.append(
            TensorSpan(
                "w1",
                w_shape,
                "one expert's slab" if per_expert else "whole tensor",
                storage_bytes(w_elems, wb),
                per_inter=storage_bytes(w_elems, wb) // i,
            )
        )
        if v["split_k"] > 1:
            out.append(
                TensorSpan(
                    "gate_up_partials (split-K, float32)",
                    (t * k, n_w),
                    "whole tensor",
                    storage_bytes(t * k * n_w, F32_BITS),
                    per_inter=storage_bytes(t * k * 2, F32_BITS),
                )
            )
        ob = v["out_bits"]  # the activation dtype, or the dtype's 16-bit intermediate
        out.append(
            TensorSpan(
                "out",
                (t, k, i),
                "whole tensor",
                storage_bytes(t * k * i, ob),
                per_inter=storage_bytes(t * k, ob),
            )
        )
    else:
        out.append(
            TensorSpan(
                "a2",
                (t * k, i),
                "whole tensor",
                storage_bytes(t * k * i, ab),
                per_inter=storage_bytes(t * k, ab),
            )
        )
        w_shape = (e, d, i)
        w_elems = d * i if per_expert else e * d * i
        out.append(
            TensorSpan(
                "w2",
                w_shape,
                "one expert's slab" if per_expert else "whole tensor",
                storage_bytes(w_elems, wb),
                per_inter=storage_bytes(w_elems, wb) // i,
            )
        )
        if v.get("accumulate") == "reduce":
            # Reduce mode: each (token, slot) row is stored, then a host step sums the topk rows.
            out.append(
                TensorSpan(
                    "slot_rows (reduce mode)",
                    (t * k, d),
                    "whole tensor",
                    storage_bytes(t * k * d, v["out_bits"]),
                )
            )
        out.append(TensorSpan("out", (t, d), "whole tensor", storage_bytes(t * d, v["out_bits"])))
    out += _scale_spans(v, p)
    for name in ("sorted_token_ids", "sorted_weights"):
        out.append(TensorSpan(name, (rows,), "whole tensor", storage_bytes(rows, ID_BITS)))
    n_blocks = math.ceil(rows / v["tile_m"])
    out.append(
        TensorSpan(
            "sorted_expert_ids", (n_blocks,), "whole tensor", storage_bytes(n_blocks, ID_BITS)
        )
    )
    return [_for_backend(v, s, _elem_bits(v, s.tensor)) for s in out]


def _scale_spans(v: Mapping[str, Any], p: Problem) -> list[TensorSpan]:
    """The scale tensors a scaled dtype declares (VARIANT["scales"]), float32 (per_group: its dtype):
    per_token [rows of the activation] through one resource; per_channel [E, N] like the
    weight it scales: one expert's row of N scales from a 64-bit expert base in per_expert
    variants, one resource over all experts in whole_tensor ones."""
    e, d, i, t, k = p.experts, p.model_dim, p.inter, p.tokens, p.topk
    stage1 = v["stage"] == 1
    out = []
    for scale in v.get("scales", ()):
        if scale["kind"] == "per_token":
            rows = t if stage1 and v.get("act_rows") != "expanded" else t * k
            out.append(
                TensorSpan(
                    f"{'x' if stage1 else 'a2'}_scale",
                    (rows,),
                    "whole tensor",
                    storage_bytes(rows, F32_BITS),
                )
            )
        elif scale["kind"] == "per_channel":
            n = 2 * i if stage1 else d
            per_expert = v["addressing"] == "per_expert"
            span = storage_bytes(n if per_expert else e * n, F32_BITS)
            out.append(
                TensorSpan(
                    f"w{v['stage']}_scale",
                    (e, n),
                    "one expert's slab" if per_expert else "whole tensor",
                    span,
                    per_inter=span // i if stage1 else 0,
                )
            )
        elif scale["kind"] == "per_group":
            # [E, N, K / group] in the scale's dtype, addressed like per_channel: one expert's
            # N x K / group scales from a 64-bit base (per_expert) or one resource (whole_tensor)
            n, kk = (2 * i, d) if stage1 else (d, i)
            groups = kk // scale["group"]
            per_expert = v["addressing"] == "per_expert"
            bits = SCALE_DTYPE_BITS[scale["dtype"]]
            span = storage_bytes(n * groups if per_expert else e * n * groups, bits)
            out.append(
                TensorSpan(
                    f"w{v['stage']}_scale",
                    (e, n, groups),
                    "one expert's slab" if per_expert else "whole tensor",
                    span,
                    per_inter=span // i,
                )
            )
        else:  # the spec refuses the others (moegen.core.vocabulary.TEMPLATE_SCALES)
            raise ValueError(f"{v['name']}: no address model for a {scale['kind']} scale")
    return out


def _elem_bits(v: Mapping[str, Any], tensor: str) -> int:
    """The element width of one of spans()' tensors (what i32 element offsets count)."""
    if tensor.endswith("_scale"):
        operand = "weight" if tensor.startswith("w") else "activation"
        scale = next(s for s in v["scales"] if s["operand"] == operand)
        return SCALE_DTYPE_BITS[scale["dtype"]]
    if tensor == "out" and v["stage"] == 1:
        return v["out_bits"]
    if tensor in ("x", "a2"):
        return v["act_bits"]
    if tensor.startswith("w"):
        return v["weight_bits"] * v.get("weight_pack", 1)  # offsets count storage elements
    if tensor == "out":
        return v["out_bits"]
    return F32_BITS if tensor.startswith("gate_up_partials") else ID_BITS


def _fmt_bytes(n: int) -> str:
    return f"{n:,} bytes ({n / GIB:.2f} GiB)"


def alternative_name(v: Mapping[str, Any]) -> str | None:
    """The per_expert twin of a whole_tensor variant (names put the addressing mode in one place)."""
    if v["addressing"] != "whole_tensor":
        return None
    return v["name"].replace("_whole_tensor", "_per_expert", 1)


def explain(v: Mapping[str, Any], s: TensorSpan, p: Problem) -> str:
    """A guard message: tensor, bytes, limit, and what to do instead."""
    line = s.line_text or (
        "2**31 (signed i32 offsets)" if s.signed else "2**32 (32-bit buffer offset)"
    )
    msg = (
        f"{v['name']}: {s.tensor} {list(s.shape)} spans {_fmt_bytes(s.span_bytes)} through "
        f"{s.resource} {s.via}, past the {line} limit of {_fmt_bytes(s.limit)}; "
        "its offsets would wrap and read or write the wrong memory."
    )
    if s.tensor.startswith("w") and s.resource == "whole tensor":
        alt = alternative_name(v)
        msg += f" Use the per_expert variant {alt} (64-bit per-expert base), or moegen's auto dispatch."
    elif s.per_inter and s.resource == "one expert's slab":
        msg += " One expert's slab alone is too large for any buffer-addressed variant."
    else:
        tokens_ok = max_tokens(v, p, s.tensor)
        msg += (
            f" Split the batch into chunks of at most {tokens_ok} tokens."
            if tokens_ok
            else " No token count fits this shape."
        )
    return msg


def max_tokens(v: Mapping[str, Any], p: Problem, tensor: str) -> int:
    """Largest token count for which `tensor` still fits (binary search on the model)."""
    lo, hi = 0, max(p.tokens, 1)

    def ok(t: int) -> bool:
        q = Problem(p.experts, p.model_dim, p.inter, t, p.topk)
        return all(s.fits for s in spans(v, q) if s.tensor == tensor)

    if not ok(1):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def check(
    v: Mapping[str, Any],
    *,
    experts: int,
    model_dim: int,
    inter: int,
    tokens: int,
    topk: int,
) -> list[str]:
    """One message per tensor whose offsets would wrap for this problem; [] = addressable."""
    p = Problem(experts, model_dim, inter, tokens, topk)
    return [explain(v, s, p) for s in spans(v, p) if not s.fits]


def addressable(v: Mapping[str, Any], p: Problem) -> bool:
    return all(s.fits for s in spans(v, p))


def inter_granule(v: Mapping[str, Any]) -> int:
    """inter must be a multiple of this for the variant's tiles (stage 1: tile n; stage 2: tile k)."""
    return v["tile_n"] if v["stage"] == 1 else v["tile_k"]


def first_failing_inter(
    v: Mapping[str, Any], experts: int, model_dim: int, tokens: int, topk: int
) -> int:
    """The smallest inter (any integer) at which some tensor no longer fits."""
    lo, hi = 1, 1
    while addressable(v, Problem(experts, model_dim, hi, tokens, topk)):
        lo, hi = hi, hi * 2
    while lo < hi:  # spans grow monotonically with inter
        mid = (lo + hi) // 2
        if addressable(v, Problem(experts, model_dim, mid, tokens, topk)):
            lo = mid + 1
        else:
            hi = mid
    return hi


def table(v: Mapping[str, Any], p: Problem) -> str:
    """A human-readable span table (used by `moegen boundary`)."""
    rows = [("tensor", "shape", "one resource covers", "span (bytes)", "limit", "fits", "< 2^31")]
    for s in spans(v, p):
        rows.append(
            (
                s.tensor,
                "x".join(map(str, s.shape)),
                s.resource,
                f"{s.span_bytes:,}",
                f"{s.limit:,}" if s.limit_bytes else ("2^31" if s.signed else "2^32"),
                "yes" if s.fits else "NO",
                "yes" if s.fits_signed else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
