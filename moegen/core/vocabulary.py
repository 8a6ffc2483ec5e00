"""moegen's vocabulary: every constant and small type that more than one module names, defined
once here (a constant defined in two places drifts). No torch, no backend.

The data recipe and the numeric limits the tests judge by live in one place too,
moegen.harness.verdict (they need torch to draw samples).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ---- command-line exit codes (README: "Exit codes") ------------------------------------------
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

# ---- the routing format (upstream moe_sorting) ----------------------------------------------
TOKEN_BITS = 24
"""sorted_token_ids packs each routed row as (topk slot << TOKEN_BITS) | token."""
TOKEN_MASK = (1 << TOKEN_BITS) - 1
ROUTING_BYTES = 4
"""Bytes of one routing element: sorted_token_ids / sorted_expert_ids are int32, sorted_weights
float32."""

# ---- the spec's axes -------------------------------------------------------------------------
ADDRESSING_MODES = ("whole_tensor", "per_expert")
"""How a kernel reaches the expert weights: one buffer resource over the whole tensor, or one
rebased to each expert in 64-bit arithmetic."""

ACCUMULATE_MODES = ("atomic", "reduce")
"""How stage 2 sums a token's topk slot contributions: `atomic` adds each into the zeroed output
with a hardware atomic of the output dtype (float32: buffer_atomic_add_f32; float16/bfloat16:
buffer_atomic_pk_add_f16/_bf16, two columns per instruction); `reduce` stores each slot's row with
plain stores and a host step sums the topk rows (upstream's reduce mode, for an output dtype the
arch has no atomic for)."""

WEIGHT_LAYOUTS = ("preshuffle_16x16", "split_nibbles_16x16")
"""How expert weights are stored: preshuffle_16x16 is aiter's shuffle_weight(w, (16, 16)) of the
stored elements, 16-row x 16-byte groups (moegen.runtime.preshuffle), the layout upstream's
kernels consume (packed int4: of the packed bytes). split_nibbles_16x16 is for packed int4 only:
shuffle_weight of the unpacked int8 values, then every 8 consecutive shuffled values packed into
4 bytes, low nibbles the first 4 (upstream's W4A8 weights)."""

PACKED_LAYOUTS = {"preshuffle_16x16": "packed_16x16", "split_nibbles_16x16": "split_nibbles"}
"""The moegen.runtime.quant int4 layout (quant.INT4_LAYOUTS) of each weight_layout, for packed
int4 weights (weight_bits 4, packing 2)."""

SCALE_KINDS = {
    "per_token": "activation",
    "per_channel": "weight",
    "per_group": "weight",
    "smoothing": "activation",
}
"""The scale kinds a dtype may declare (variants.yaml `dtypes.<d>.scales[].kind`) and the operand
each scales. Shapes: per_token [rows] (one per activation row: stage 1 a token, stage 2 a
(token, slot) row); per_channel [E, N] (one per expert output channel); per_group [E, N, K / group]
(`group:` elements along K); smoothing [E, K] (int8smooth: a per-expert factor on activations
before their per-token quantization)."""

SCALE_APPLIED = ("epilogue", "weights")
"""Where a scale is applied: `epilogue` multiplies the f32 accumulator (per row and column)
before the activation function / routing weight; `weights` dequantizes weights in registers
(per group, before the MFMA)."""

TEMPLATE_SCALES = (("per_token", "epilogue"), ("per_channel", "epilogue"), ("per_group", "weights"))
"""(kind, applied) pairs the FlyDSL templates implement; the spec refuses the others at their
position (declarable in the vocabulary, not yet generated)."""

ACTIVATION_ROWS = ("token", "expanded")
"""How stage 1's activations arrive (variants.yaml `dtypes.<d>.activation_rows`): `token` (the
default), x [tokens, model_dim], one row (and per_token scale) per token; `expanded`, x
pre-expanded per (token, slot) to [topk * tokens, model_dim], SLOT-MAJOR (row = slot * tokens +
token, upstream's int8smooth: each (token, slot) row was smoothed by its expert's factors and
quantized on its own, moegen.runtime.quant.quantize_smooth), one per_token scale per row. Stage
2's a2 is per (token, slot) row in every dtype (token-major), so it ignores this."""
SCALE_DTYPE_BITS = {"float32": 32, "bfloat16": 16}
"""The torch dtypes a scale tensor may have (variants.yaml `scales[].dtype`) and their bits: the
address model sizes scale tensors by them. bfloat16 is upstream's per-group scale dtype (int4
W4A16); moegen.backends.flydsl.limits says which kinds the templates load in which dtype."""

ACCUMULATORS = {"f32": "float32", "i32": "int32"}
"""An MFMA accumulator type (dtypes.<d>.accumulator) -> the torch dtype of its raw values:
f32 for float MFMAs (bf16, f16, fp8), i32 for the integer ones (i8)."""
TEMPLATE_ACCUMULATORS = ("f32", "i32")
"""Accumulator types the FlyDSL templates implement (i32: integer MFMAs, converted to f32 in the
epilogue before the scales; moegen.backends.flydsl.limits refuses an i32 accumulator with a
float MFMA, or with split-K, whose float32 partial atomics take no i32)."""

BACKENDS = ("flydsl", "triton")
"""The kernel languages a variant may be generated in (variants.yaml's `backend` axis); each is a
subpackage of moegen.backends."""
DEFAULT_BACKEND = "flydsl"
"""The backend of a variant that names none. Its variants' names and parameters leave the backend
out, so adding the axis changed nothing they render to."""

VENDORS = ("amd", "nvidia")
"""Who makes an arch (variants.yaml `archs.<arch>.vendor`): decides which backends can target it
and which offset lines apply there (moegen.core.address_model.offset_line)."""
DEFAULT_VENDOR = "amd"
"""An arch that names no vendor (every arch of the FlyDSL-only spec) is AMD's."""

# ---- ISA counter floors (variants.yaml `floors:`, checked by `moegen verify`) ----------------
FLOORS = {
    "kib_in_flight": "min",
    "mfma_per_load": "min",
    "weight_load_bytes_per_lane": "min",
    "waves_per_simd": "min",
    "drains_in_loop": "max",
    "spills": "max",
}
"""Each floor a variant may declare, and which way it bounds its counter (moegen.verify.counters
defines the counters): "min" = the counter must be at least the floor, "max" = at most (the
fewest full drains in the K loop, the fewest spills). kib_in_flight bounds the mean."""

# ---- sizes -----------------------------------------------------------------------------------
GIB = 2**30


@dataclass(frozen=True)
class Scale:
    """One declared scale tensor of a dtype (variants.yaml `dtypes.<d>.scales`)."""

    kind: str  # a SCALE_KINDS key
    dtype: str  # torch dtype of the scale values (float32)
    applied: str  # one of SCALE_APPLIED
    group: int = 0  # per_group: elements along K sharing one scale

    @property
    def operand(self) -> str:
        """"activation" or "weight": which operand the scale belongs to."""
        return SCALE_KINDS[self.kind]


@dataclass(frozen=True)
class Mfma:
    """A 16x16xK MFMA: lane l holds row/col l % 16 and k-slice l // 16 of A and B.

    `op` is the instruction: its flydsl.expr.rocdl function name in the spec, the function
    itself in a generated kernel."""

    op: Any
    k: int  # reduction depth of one instruction
    operand: str  # MLIR element type of the per-lane A/B vector
    width: int  # elements per lane: k split over the 4 groups of 16 lanes
    acc: str = "f32"  # the accumulator type (an ACCUMULATORS key): the dtype's `accumulator`


def cache_home() -> Path:
    """moegen's cache directory: $MOEGEN_CACHE_DIR, else $XDG_CACHE_HOME/moegen
    (default ~/.cache/moegen). Compile and format caches are subdirectories of it."""
    if os.environ.get("MOEGEN_CACHE_DIR"):
        return Path(os.environ["MOEGEN_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "moegen"
