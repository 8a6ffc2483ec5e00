"""What the kernel templates in templates/triton/ can handle, checked before anything renders.

Kept free of torch and triton imports: `moegen validate` runs it for every variant.
"""

from __future__ import annotations

from typing import Any

from moegen.core.vocabulary import ADDRESSING_MODES

DOT_MIN = 16  # tl.dot needs every block dim >= 16
WARPS = (1, 2, 4, 8, 16)
MAX_STAGES = 8
SUPPORTED_OUT_DTYPES = ("float32",)  # stage 2 accumulates with tl.atomic_add on float32
# (kind, applied) of the scales the templates multiply into the f32 accumulator
EPILOGUE_SCALES = (("per_token", "epilogue"), ("per_channel", "epilogue"))


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_tiles(v: Any) -> list[str]:
    """What the Triton templates cannot handle for variant `v`, one reason per problem."""
    problems = []
    if v.addressing not in ADDRESSING_MODES:
        problems.append(f"addressing {v.addressing!r} is not one of {list(ADDRESSING_MODES)}")
    for what, n in (("m", v.tile_m), ("n", v.tile_n), ("k", v.tile_k)):
        if n <= 0 or n % DOT_MIN:
            problems.append(f"tile_{what}={n} must be a positive multiple of {DOT_MIN} (tl.dot)")
    for i, c in enumerate(v.configs):
        where = f"configs[{i}] (tokens <= {c.tokens})"
        for what, n in (("m", c.m), ("n", c.n), ("k", c.k)):
            if not _pow2(n) or n < DOT_MIN:
                problems.append(f"{where}: {what}={n} must be a power of two >= {DOT_MIN}")
        if c.warps not in WARPS:
            problems.append(f"{where}: warps={c.warps} must be one of {list(WARPS)}")
        if not 1 <= c.stages <= MAX_STAGES:
            problems.append(f"{where}: stages={c.stages} must be in [1, {MAX_STAGES}]")
    scales = [(s.kind, s.applied) for s in v.dtype.scales]
    if any(pair not in EPILOGUE_SCALES for pair in scales):
        problems.append(
            "the Triton templates apply per_token and per_channel scales in the epilogue only "
            f"(dtype {v.dtype.name!r} declares {scales})"
        )
    bits = (v.dtype.activation_bits, v.dtype.weight_bits)
    if v.dtype.packing != 1 or bits not in ((16, 16), (8, 8)):
        problems.append(
            "the Triton templates handle unpacked 16-bit or 8-bit (scaled) activations and "
            f"weights (dtype {v.dtype.name!r}: {bits[0]}/{bits[1]}-bit, packing {v.dtype.packing})"
        )
    if bits == (8, 8) and not v.dtype.scales:
        problems.append(f"dtype {v.dtype.name!r}: 8-bit operands need their scales declared")
    if v.dtype.scales and v.split_k != 1:
        problems.append("split-K partials are summed unscaled: a scaled dtype takes split_k 1")
    if getattr(v, "k_unroll", None):
        problems.append("k_unroll is a directive of the FlyDSL K loop; Triton variants take none")
    if v.split_k < 1:
        problems.append(f"split_k={v.split_k} must be >= 1")
    if v.stage == 2 and v.split_k != 1:
        problems.append("split-K (split_k >= 2) exists for stage 1 only")
    if v.stage == 2 and v.out_dtype not in SUPPORTED_OUT_DTYPES:
        problems.append(
            f"stage-2 out_dtype {v.out_dtype!r}: the template accumulates with a float32 "
            f"atomic add; use one of {list(SUPPORTED_OUT_DTYPES)}"
        )
    return problems
