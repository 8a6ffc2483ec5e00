"""What the kernel templates in templates/flydsl/ can handle, checked before anything renders.

Kept free of torch and flydsl imports: `moegen validate` runs it for every variant.
"""

from __future__ import annotations

from typing import Any

from moegen.core.vocabulary import ADDRESSING_MODES

MFMA_ROWS = 16  # every template MFMA is 16x16xK
WAVES = 4  # 256-thread workgroups
WAVE_COLUMNS = 16  # each wave's N slice is a multiple of one MFMA's 16 columns
# Stage 2's outputs: float32 through buffer atomic fadd f32; float16 / bfloat16 through packed
# atomics (an LDS-staged epilogue) or, in reduce mode, through plain per-slot stores.
SUPPORTED_OUT_DTYPES = ("float32", "float16", "bfloat16")


def check_tiles(v: Any) -> list[str]:
    """What the kernel templates cannot handle for variant `v`, one reason per problem.

    `v` is a moegen Variant (or anything with the same attributes); an empty list means
    the templates can render it.
    """
    problems = []
    if v.addressing not in ADDRESSING_MODES:
        problems.append(f"addressing {v.addressing!r} is not one of {list(ADDRESSING_MODES)}")
    if v.tile_m <= 0 or v.tile_m % MFMA_ROWS:
        problems.append(f"tile_m={v.tile_m} must be a positive multiple of {MFMA_ROWS} (MFMA rows)")
    if v.tile_n <= 0 or v.tile_n % (WAVES * WAVE_COLUMNS):
        problems.append(
            f"tile_n={v.tile_n} must be a positive multiple of {WAVES * WAVE_COLUMNS} "
            f"({WAVES} waves x {WAVE_COLUMNS} MFMA columns)"
        )
    for arch in v.archs:
        mfma = v.dtype.mfma[arch]
        if v.tile_k <= 0 or v.tile_k % mfma.k:
            problems.append(
                f"tile_k={v.tile_k} must be a positive multiple of the {arch} MFMA's k={mfma.k}"
            )
        if mfma.width * 4 != mfma.k:
            problems.append(
                f"{arch} MFMA {mfma.op}: width {mfma.width} must be k/4 (4 lane groups share k={mfma.k})"
            )
        if mfma.width * v.dtype.weight_bits % 32:
            problems.append(
                f"{arch} MFMA {mfma.op}: a lane's {mfma.width} operands must fill whole dwords"
            )
    if v.split_k < 1:
        problems.append(f"split_k={v.split_k} must be >= 1")
    if v.stage == 2 and v.split_k != 1:
        problems.append("split-K (split_k >= 2) exists for stage 1 only")
    if v.stage == 2 and v.out_dtype not in SUPPORTED_OUT_DTYPES:
        problems.append(
            f"stage-2 out_dtype {v.out_dtype!r} is not one the template can store; "
            f"use one of {list(SUPPORTED_OUT_DTYPES)}"
        )
    return problems
