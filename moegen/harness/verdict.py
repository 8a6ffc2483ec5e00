"""Per-row verdicts of a kernel result against the fp32 reference, and the data they run on.

Every numeric check in moegen (the generated boundary tests, `moegen emulate`, the seed table)
goes through judge(): it compares each output row -- a (token, slot) row of stage 1, a token
row of stage 2 -- and passes a case only if every row passes. A global cos_dist over all rows
hides a few corrupted rows among many good ones (a wrapped read for 4 experts of 128 reads as
cos_dist 0.0076 < 0.01), so it is kept only as a figure of merit, and checked as well.

The data recipe lives here too, because the tolerances are derived from it: activations
x ~ N(0, 1) and weights w ~ N(0, s^2) with s = PREACT_STD / sqrt(K), so every pre-activation
x . w has std PREACT_STD whatever the reduction length K. At |gate| of a few units SiLU is far
from linear, so a wrong scale, a GELU for the SiLU, a doubled output or a dropped routing
weight changes the values by several percent of the row's largest entry and fails the
max-abs-error bound, not only the direction.

All limits are here; generated code imports them and holds no literal limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from moegen.core.vocabulary import GIB

# ---- the data recipe -----------------------------------------------------------------------

ACT_STD = 1.0  # x (stage 1) and a2 (stage 2): N(0, 1), exactly representable scale
PREACT_STD = 2.5  # std of every x . w: SiLU(2.5) = 2.31 vs GELU(2.5) = 2.48 -- 7 % apart


def weight_std(k: int) -> float:
    """Std of the weights so a K-long dot product with N(0, 1) activations has std PREACT_STD."""
    return PREACT_STD / math.sqrt(k)


def randn(shape: Sequence[int], gen: torch.Generator, std: float) -> torch.Tensor:
    """N(0, std^2) fp32 samples of `shape` (the caller casts to the operand dtype)."""
    return torch.randn(tuple(shape), generator=gen) * std


# ---- tolerances ----------------------------------------------------------------------------
# Operands are bf16/fp16 and the SAME rounded values feed kernel and reference, so input
# rounding cancels. What remains:
#  (a) the kernel stores its output in a 16-bit (stage 1: the activation dtype) or fp32 dtype:
#      round-to-nearest errs by at most the unit roundoff u of that dtype times the element,
#      so by at most u * max|ref row|;
#  (b) fp32 accumulation in another order than torch's, over K <= 6144 products of std
#      PREACT_STD / sqrt(K): typically sqrt(K) * 2**-24 * |partial sums| ~ 78 * 6e-8 * 2.5
#      ~ 1e-5, i.e. ~2e-6 of a row whose largest entry is >= 5 (every recipe row's is), plus
#      1-ulp hardware exp2/rcp in SiLU.
UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24}
"""u = 2**-(significand bits) of each output dtype: bf16 8, fp16 11, fp32 24."""

ACCUMULATION_RTOL = 2.0**-12
"""(b) relative to max|ref row|, with a 100x margin (2.4e-4)."""

SCALED_EPILOGUE_RTOL = 2.0**-20
"""Added to (b) for a scaled dtype (fp8 per-token x per-channel). The reference reads the
DEQUANTIZED operands, so quantization error is not in the comparison at all: fp8 x fp8
products are exact in the MFMA and summed in fp32 as for bf16. What the kernel adds is its
epilogue, acc * act_scale[row] * w_scale[e, col], two more fp32 roundings per output where the
reference rounds once per dequantized element (K of them, averaging out): a few units of
2**-24 of the element. 2**-20 (16 ulps of fp32, 1e-6) bounds that with margin; it is far
below (b) itself. A dropped scale leaves a row off by a factor max(fp8) / amax(row) (tens:
the recipe's rows reach a few units against 240 / 448), a doubled one by 2: both fail."""


INTEGER_ACCUMULATION_RTOL = 2.0**-14
"""(b) for an integer accumulator (int8 x int8 into i32, `accumulator: i32`): the kernel's sum
of K products is EXACT (|sum| <= K * 127**2 < 2**31 for K < 133k at full-scale rows; the
recipe's N(0, 1) rows reach |q| ~ 127 only at their peak, so the stage-2 own-line points at
K ~ 350k-700k stay far below 2**31 too), converted to f32 once. What remains is the fp32
reference's own summation of the dequantized products, in torch's order: measured on the
emulator at <= 1.3e-6 of the row peak for K <= 5504 and 1.2e-5 at K = 699008 (stage 2's own
line). 2**-14 (6.1e-5) keeps a 5x margin at the largest K and is 4x tighter than the float
dtypes' ACCUMULATION_RTOL; the epilogue's scale roundings add SCALED_EPILOGUE_RTOL as for fp8."""


DEQUANTIZED_WEIGHTS_RTOL = 0.0
"""Added to (b) for weights dequantized in registers (int4 W4A16: a per_group scale applied to
the weights): nothing, because the reference reads the weights the kernel multiplies. The
kernel turns each int4 value q and its group's bf16 scale s into bf16(q * s): q * s is exact in
f32 (4 x 8 significant bits) and rounded once, to nearest even, into the MFMA's bf16 operand;
moegen.harness.scaled dequantizes the reference's weights to exactly those bf16 values, so the
bf16 x bf16 products are exact on both sides and only (b) remains (measured on the emulator at
the small shape: stage 2, fp32 output, max |err| 1.4e-6 against a bound of 1.7e-3). Judged
against the UNROUNDED q * s instead, each weight would differ by up to 2**-8 relative, about
1e-3 of a row peak over K terms (the fp32 output's bound is 2.4e-4): that is the
dequantization's own rounding, not a kernel error, and a bound loose enough for it would hide
a 1 % error. The rounding itself (a tie to even, a round down, sign extension, nibble order)
is pinned by tests/emulator/test_semantics.py::test_int4_dequant."""


def accumulation_rtol(variant: Any) -> float:
    """(b) for a generated module's VARIANT: ACCUMULATION_RTOL (INTEGER_ACCUMULATION_RTOL for an
    i32 accumulator), plus SCALED_EPILOGUE_RTOL when its dtype applies scales in the epilogue
    and DEQUANTIZED_WEIGHTS_RTOL when it dequantizes weights in registers."""
    applied = {s["applied"] for s in variant.get("scales", ())}
    base = INTEGER_ACCUMULATION_RTOL if variant.get("accumulator") == "i32" else ACCUMULATION_RTOL
    return (
        base
        + (SCALED_EPILOGUE_RTOL if "epilogue" in applied else 0.0)
        + (DEQUANTIZED_WEIGHTS_RTOL if "weights" in applied else 0.0)
    )


ATOL = 1e-4
"""Absolute floor of the max-abs-error bound: ten times the absolute size of (b), so a row
whose reference is small by chance is not failed by fp32 summation noise."""


def tensor_core_accumulation_rtol(k: int, mma_k: int = 16) -> float:
    """(b) for a GPU's matrix units over a K-long dot product: their float32 accumulator may be
    truncated (not rounded) once per MMA step of `mma_k`, a biased error of up to 2**-23 of the
    running sum per step, K / mma_k steps. At K <= 6144 it stays below ACCUMULATION_RTOL; the
    boundary sweeps' stage-2 own-line points (K = inter ~ 349k) need it (measured on an H200:
    6e-4 of the row peak at K = 349440, cos_dist 2e-8)."""
    return max(ACCUMULATION_RTOL, -(-k // mma_k) * 2.0**-23)


def rtol(out_dtype: torch.dtype, accumulation: float = ACCUMULATION_RTOL) -> float:
    """Max-abs-error bound relative to max|ref row| for a result stored in `out_dtype`: twice
    (a), room for one more rounding to that dtype on the way, plus (b). bf16: 2**-7 +
    2**-12 = 0.0081; fp16: 0.0012; fp32: 0.00024. A doubled output (error 100 %), a GELU for
    SiLU (3-7 % of the row peak at |gate| ~ 2.5), a 2 % scale or a dropped routing weight
    (x 1 / w >= x 1.2 for topk >= 2) exceed it."""
    name = str(out_dtype).removeprefix("torch.")
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"no tolerance for output dtype {name}; known: {sorted(UNIT_ROUNDOFF)}")
    return 2 * UNIT_ROUNDOFF[name] + accumulation


ROW_COS_DIST_LIMIT = 2.0**-13
"""Per-row cos_dist bound: a row with relative error e = |out - ref| / |ref| has
cos_dist <= e**2 / 2. Within the bf16 bound every element errs by <= 2**-7 of the row peak,
so e <= 2**-7 * (peak / rms ~ 2, bounded for these rows) = 2**-6 and cos_dist <= 2**-13
(1.2e-4); measured rows sit near 1e-6. A wrapped read (unrelated data or zeros) gives ~1."""

GLOBAL_COS_DIST_LIMIT = 0.01
"""The seed's metric (1 - cosine similarity over all checked outputs), kept for comparison
with upstream tables; it must pass too, but alone it cannot see a few bad rows."""

WORST_ROWS_SHOWN = 8


# ---- verdicts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowKey:
    """Which output row: token, its topk slot (None for a stage-2 token row, which sums every
    slot) and the experts whose weight slabs it reads."""

    token: int
    slot: int | None
    experts: tuple[int, ...]


@dataclass(frozen=True)
class Row:
    """One row's figures against its bounds."""

    key: RowKey
    cos_dist: float
    max_abs_err: float
    bound: float  # the largest passing max|out - ref|: rtol(out dtype) * max|ref row| + ATOL

    @property
    def passed(self) -> bool:
        return self.cos_dist <= ROW_COS_DIST_LIMIT and self.max_abs_err <= self.bound

    @property
    def badness(self) -> float:
        """How far past its bounds the row is (> 1 fails); orders the rows shown."""
        return max(self.cos_dist / ROW_COS_DIST_LIMIT, self.max_abs_err / self.bound)


@dataclass(frozen=True)
class Verdict:
    """Per-row figures of one case, the global cos_dist, and the ambiguous accesses that touch
    a checked row (moegen.emulator.AmbiguousAccess: buffer accesses whose result depends on
    whether voffset + inst_offset wraps at 2**32, which the sources disagree on). status: "ok",
    "WRONG" (a row or the global figure fails) or "INCONCLUSIVE" (no row fails, but a checked
    row may have read other bytes on hardware than in the emulator: not a pass)."""

    rows: tuple[Row, ...]
    global_cos_dist: float
    slab_bytes: int
    rtol: float
    ambiguous: tuple[Any, ...] = field(default=())

    @property
    def failed_rows(self) -> list[Row]:
        return sorted((r for r in self.rows if not r.passed), key=lambda r: -r.badness)

    @property
    def worst_row(self) -> Row:
        return max(self.rows, key=lambda r: r.badness)

    @property
    def status(self) -> str:
        if self.failed_rows or not self.global_cos_dist < GLOBAL_COS_DIST_LIMIT:
            return "WRONG"
        return "INCONCLUSIVE" if self.ambiguous else "ok"

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        """One line: status, failing rows, global cos_dist and the worst row's figures."""
        w = self.worst_row
        return (
            f"{self.status}: {len(self.failed_rows)} of {len(self.rows)} rows fail; "
            f"global cos_dist={self.global_cos_dist:.3e} (limit {GLOBAL_COS_DIST_LIMIT:g}); "
            f"worst row cos_dist={w.cos_dist:.3e} (limit {ROW_COS_DIST_LIMIT:.3g}), "
            f"max|err|={w.max_abs_err:.3g} (bound {w.bound:.3g})"
        )

    def report(self, shown: int = WORST_ROWS_SHOWN) -> str:
        """summary() and, when not ok, the worst rows with each expert's slab offset (so a
        read past 2**32 is recognisable) or the ambiguous accesses."""
        lines = [self.summary()]
        if self.failed_rows:
            lines.append(
                f"worst rows (bound per row: max|err| <= {self.rtol:.3g} * max|ref row| + {ATOL:g}, "
                f"cos_dist <= {ROW_COS_DIST_LIMIT:.3g}):"
            )
            lines += [f"  {self._describe(r)}" for r in self.failed_rows[:shown]]
            if len(self.failed_rows) > shown:
                lines.append(f"  ... and {len(self.failed_rows) - shown} more")
        elif self.ambiguous:
            lines.append(
                f"INCONCLUSIVE: {len(self.ambiguous)} emulated buffer accesses of checked rows "
                "depend on whether voffset + inst_offset wraps at 2**32, which the emulator "
                "cannot settle, so the rows' agreement proves nothing; run the case on a GPU "
                "or choose a shape whose offsets stay clear of 2**32:"
            )
            lines += [f"  {a}" for a in self.ambiguous[:shown]]
            if len(self.ambiguous) > shown:
                lines.append(f"  ... and {len(self.ambiguous) - shown} more")
        return "\n".join(lines)

    def _describe(self, row: Row) -> str:
        k = row.key
        where = f"token {k.token}" + (f" slot {k.slot}" if k.slot is not None else "")
        experts = ", ".join(
            f"expert {e} slab @ {e * self.slab_bytes:#x} ({e * self.slab_bytes / GIB:.2f} GiB)"
            for e in k.experts
        )
        return (
            f"{where}: {experts}: cos_dist={row.cos_dist:.3e}, "
            f"max|err|={row.max_abs_err:.3g} (bound {row.bound:.3g})"
        )


def judge(
    got: torch.Tensor,
    ref: torch.Tensor,
    keys: Sequence[RowKey],
    *,
    out_dtype: torch.dtype,
    slab_bytes: int,
    ambiguous: Iterable[Any] = (),
    accumulation: float = ACCUMULATION_RTOL,
) -> Verdict:
    """Compare got and ref row by row ([rows, n], one RowKey per row; entries that were not
    checked must be 0 in both); out_dtype is the dtype the kernel stored its result in (it
    sets the rounding allowed, see rtol). Raises ValueError on mismatched shapes or no rows."""
    if got.shape != ref.shape or got.dim() != 2 or got.shape[0] != len(keys):
        raise ValueError(
            f"judge: got {list(got.shape)} and ref {list(ref.shape)} must both be "
            f"[{len(keys)} rows, n]"
        )
    if not keys:
        raise ValueError("judge: no rows to check (the checked workgroups computed no output)")
    g, r = got.double(), ref.double()
    dot = (g * r).sum(1)
    norms = g.norm(dim=1) * r.norm(dim=1)
    # a row zero in both agrees exactly; zero in one only is as far off as it gets (cos 0)
    both_zero = (g.abs().amax(1) == 0) & (r.abs().amax(1) == 0)
    cos = torch.where(norms > 0, dot / norms.clamp_min(1e-300), both_zero.double())
    row_cos = (1 - cos).tolist()
    err = (g - r).abs().amax(1).tolist()
    ref_max = r.abs().amax(1).tolist()
    tol = rtol(out_dtype, accumulation)
    rows = tuple(Row(k, c, e, tol * m + ATOL) for k, c, e, m in zip(keys, row_cos, err, ref_max))
    flat = torch.nn.functional.cosine_similarity(g.flatten(), r.flatten(), dim=0)
    return Verdict(rows, float(1 - flat), slab_bytes, tol, tuple(ambiguous))


def slab_bytes(weight: torch.Tensor) -> int:
    """Bytes of one expert's slab of a [E, rows, cols] weight (expert e starts at e * this)."""
    return weight[0].numel() * weight.element_size()


def touching(
    accesses: Iterable[Any],
    sorted_token_ids: torch.Tensor,
    tile_m: int,
    rows: set[tuple[int, int]],
    token_bits: int,
) -> list[Any]:
    """The ambiguous accesses whose workgroup's M block (grid y) holds a checked (token, slot).

    An access whose workgroup is not an (x, y[, z]) tuple is kept: it cannot be shown not to
    touch a checked row."""
    kept = []
    mask = (1 << token_bits) - 1
    for access in accesses:
        wg = getattr(access, "workgroup", None)
        try:
            y = int(wg[1])
        except (TypeError, IndexError, ValueError):
            kept.append(access)
            continue
        block = sorted_token_ids[y * tile_m : (y + 1) * tile_m].tolist()
        if any((p & mask, p >> token_bits) in rows for p in block):
            kept.append(access)
    return kept
