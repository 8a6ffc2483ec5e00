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
# The preshuffled weight layout (moegen.runtime.preshuffle): 16-row x K_BLOCK blocks read
# with one 16-byte load per lane; the activation tile is staged in LDS with the same K order.
K_BLOCK = 32
LANE_LOAD_BYTES = 16
OPERAND_BITS = 16  # activations and weights: 16-bit (bf16, f16) only, for now
LDS_BYTES = 64 * 1024  # per workgroup on gfx942 (gfx950 has more; the smaller one rules)
MIN_STAGING_BYTES = 8  # each thread copies at least 8 bytes of the activation tile


EPILOGUE_TILE_BYTES = 16 * 16 * 4  # a wave's float32 scratch tile (packed-atomic epilogue)


def lds_bytes(v: Any) -> int:
    """LDS a variant's kernel allocates: the activation tile, double-buffered, plus one scratch
    tile per wave where stage 2 adds 16-bit outputs with packed atomics."""
    staged = 2 * v.tile_m * v.tile_k * v.dtype.activation_bits // 8
    packed = v.stage == 2 and v.accumulate == "atomic" and v.out_dtype != "float32"
    return staged + (WAVES * EPILOGUE_TILE_BYTES if packed else 0)


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
        if mfma.width * v.dtype.weight_bits % 32 or (LANE_LOAD_BYTES * 8) % (
            mfma.width * v.dtype.weight_bits
        ):
            problems.append(
                f"{arch} MFMA {mfma.op}: a lane's {mfma.width} operands must fill whole dwords "
                f"and split a {LANE_LOAD_BYTES}-byte load evenly"
            )
    if v.dtype.weight_bits != OPERAND_BITS or v.dtype.activation_bits != OPERAND_BITS:
        problems.append(
            f"the preshuffled K loop handles {OPERAND_BITS}-bit activations and weights only "
            f"(this dtype: {v.dtype.activation_bits}-bit activations, {v.dtype.weight_bits}-bit weights)"
        )
    if v.tile_k <= 0 or v.tile_k % K_BLOCK:
        problems.append(
            f"tile_k={v.tile_k} must be a positive multiple of {K_BLOCK} (the preshuffled K block)"
        )
    if v.tile_m > 0 and v.tile_m % MFMA_ROWS == 0 and v.tile_k > 0 and v.tile_k % K_BLOCK == 0:
        problems += _staging_problems(v)
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


def _staging_problems(v: Any) -> list[str]:
    """The activation tile's LDS staging (valid tile_m and tile_k): whole swizzle rows, an
    equal share per thread, and LDS room for two buffers."""
    problems = []
    row_bytes = v.tile_k * v.dtype.activation_bits // 8
    if row_bytes % (8 * LANE_LOAD_BYTES):
        problems.append(
            f"tile_k={v.tile_k}: an LDS activation row of {row_bytes} bytes is not a multiple of "
            f"the {8 * LANE_LOAD_BYTES} bytes the (row % 8) swizzle permutes; use tile_k = 64 or 128"
        )
    staged = v.tile_m * row_bytes
    threads = WAVES * 64
    # the template's A_CHUNK: 16-byte loads when they split evenly, else 8-byte ones
    chunk = LANE_LOAD_BYTES if staged % (threads * LANE_LOAD_BYTES) == 0 else MIN_STAGING_BYTES
    if staged % (threads * chunk):
        problems.append(
            f"tile {v.tile_m}x{v.tile_k}: the {staged}-byte activation tile does not split into "
            f"{MIN_STAGING_BYTES}- or {LANE_LOAD_BYTES}-byte chunks, the same number per thread "
            f"over {threads} threads"
        )
    if lds_bytes(v) > LDS_BYTES:
        problems.append(
            f"tile {v.tile_m}x{v.tile_k}: the double-buffered activation tile (and any epilogue "
            f"scratch) needs {lds_bytes(v)} bytes of LDS, over {LDS_BYTES}; use a smaller tile_m or tile_k"
        )
    return problems
