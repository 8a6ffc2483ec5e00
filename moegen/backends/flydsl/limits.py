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
# The preshuffled weight layout (moegen.runtime.preshuffle): a wave reads a 16-row x k_block()
# block with one 16-byte load per lane (4 lane groups x 16 bytes of K: 32 elements of a 16-bit
# dtype, 64 of an 8-bit one); the activation tile is staged in LDS with the same K order.
LANE_LOAD_BYTES = 16
LANE_GROUPS = 4  # 64 lanes / 16 rows
OPERAND_BITS = (8, 16)  # activation and weight element bits the K loop handles (equal ones)
# Weight bits dequantized in registers (int4 W4A16: 2 per byte, 32 per 16-byte lane load = one
# scale group, multiplied by its group's scale into the 16-bit activation type).
DEQUANT_BITS = (4,)
GROUP_SCALE_DTYPE = "bfloat16"  # upstream's int4_bf16 group scales (variants.yaml int4_bf16)
# Bits of the MLIR element type a dtype's `mfma.<arch>.operand` names (a lane's operand vector
# holds `width` of them).
OPERAND_TYPE_BITS = {"i8": 8, "i16": 16, "bf16": 16, "f16": 16, "i32": 32, "i64": 64}


def k_block(element_bits: int) -> int:
    """K elements a wave's 16 B/lane load covers in one 16-row group (the kernel's K_BLOCK)."""
    return LANE_GROUPS * LANE_LOAD_BYTES * 8 // element_bits


K_BLOCK = k_block(16)  # the 16-bit dtypes' K block (32)
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
        bits = OPERAND_TYPE_BITS.get(mfma.operand)
        if bits is None:
            problems.append(
                f"{arch} MFMA {mfma.op}: operand type {mfma.operand!r} is not one of "
                f"{sorted(OPERAND_TYPE_BITS)}"
            )
            continue
        # The MFMA multiplies activation-typed operands: weights are loaded as such, or (int4)
        # dequantized into the activation type in registers.
        elem_bits = v.dtype.activation_bits
        lane_bits = mfma.width * bits
        if lane_bits != (mfma.k // LANE_GROUPS) * elem_bits:
            problems.append(
                f"{arch} MFMA {mfma.op}: a lane's operand ({mfma.width} x {mfma.operand}) must hold "
                f"k/4 = {mfma.k // LANE_GROUPS} elements of {elem_bits} bits "
                f"(4 lane groups share k={mfma.k})"
            )
        elif lane_bits % 32 or (LANE_LOAD_BYTES * 8) % lane_bits:
            problems.append(
                f"{arch} MFMA {mfma.op}: a lane's operand must fill whole dwords "
                f"and split a {LANE_LOAD_BYTES}-byte load evenly"
            )
    problems += _operand_problems(v)
    kb = weight_k_block(v.dtype)
    if v.tile_k <= 0 or v.tile_k % kb:
        problems.append(
            f"tile_k={v.tile_k} must be a positive multiple of {kb} (the preshuffled K block "
            f"of {v.dtype.weight_bits}-bit weights)"
        )
    if v.tile_m > 0 and v.tile_m % MFMA_ROWS == 0 and v.tile_k > 0 and v.tile_k % kb == 0:
        problems += _staging_problems(v)
    if v.dtype.scales and (v.split_k != 1 or (v.stage == 2 and v.out_dtype != "float32")):
        problems.append(
            "a scaled dtype's epilogue is generated for split_k 1 and a float32 stage-2 output "
            "only (split-K partials and 16-bit stage-2 epilogues do not apply scales yet)"
        )
    problems += _accumulator_problems(v)
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


def _accumulator_problems(v: Any) -> list[str]:
    """An integer accumulator (the spec checks it matches each arch's MFMA) is converted to f32
    only in the fused epilogues: split-K adds raw float32 partials, and the packed 16-bit
    stage-2 epilogue stages float32 tiles."""
    acc = v.dtype.accumulator
    if acc != "f32" and (v.split_k != 1 or (v.stage == 2 and v.out_dtype != "float32")):
        return [
            f"an {acc} accumulator is converted to f32 in the fused epilogues only: split_k 1 "
            "and a float32 stage-2 output"
        ]
    return []
def packed_mode(d: Any) -> str | None:
    """How the K loop turns packed weights (int4: 2 per byte) into MFMA operands, from the
    dtype's properties: "dequant" into 16-bit activations' type by a per-group scale (W4A16),
    "unpack" into int8 for the i8 MFMA with the scales in the epilogue (W4A8), None for unpacked
    weights. _operand_problems says which combinations the templates handle."""
    if d.packing == 1:
        return None
    return "dequant" if d.activation_bits == 16 else "unpack"


def weight_k_block(d: Any) -> int:
    """The K elements one 16-row group of the preshuffled weights covers per lane load (the
    kernel's K_BLOCK): an unpacked weight's 16 B lane loads (32 16-bit or 64 8-bit values), a
    dequantized int4's 16 B (128 values), an unpacked-to-int8 int4's 8 B (the int8 layout's 64)."""
    if packed_mode(d) == "unpack":
        return k_block(d.activation_bits)
    return k_block(d.weight_bits) if d.weight_bits in OPERAND_BITS + DEQUANT_BITS else K_BLOCK


def _operand_problems(v: Any) -> list[str]:
    """Activation and weight storage the K loop handles: equal 8- or 16-bit operands, or packed
    4-bit weights (2 per byte), dequantized per group into 16-bit activations (W4A16) or
    unpacked into int8 for the i8 MFMA (W4A8), in registers."""
    d = v.dtype
    if d.weight_bits in DEQUANT_BITS:
        return _packed_problems(d)
    problems = []
    if d.weight_bits not in OPERAND_BITS or d.activation_bits != d.weight_bits:
        problems.append(
            f"the preshuffled K loop handles equal {' or '.join(map(str, OPERAND_BITS))}-bit "
            f"activations and weights, or packed {DEQUANT_BITS[0]}-bit weights (this dtype: "
            f"{d.activation_bits}-bit activations, {d.weight_bits}-bit weights)"
        )
    if d.packing != 1:
        problems.append(f"packing {d.packing} is handled for {DEQUANT_BITS[0]}-bit weights only")
    if d.group_scale is not None:
        problems.append(
            "a per_group scale applied to the weights dequantizes packed "
            f"{DEQUANT_BITS[0]}-bit weights only; {d.weight_bits}-bit weights take epilogue scales"
        )
    return problems + _epilogue_scale_problems(d)


def _epilogue_scale_problems(d: Any) -> list[str]:
    return [
        f"the epilogue loads {s.kind} scales as float32, not {s.dtype}"
        for s in d.scales
        if s.applied == "epilogue" and s.dtype != "float32"
    ]


def _packed_problems(d: Any) -> list[str]:
    """Packed 4-bit weights: with 16-bit activations, dequantized by a bf16 per-group scale of
    one 16 B lane load's values (packed bytes preshuffled: preshuffle_16x16); with int8
    activations, sign-extended into int8 for the i8 MFMA, the scales in the epilogue (the int8
    preshuffle then packed: split_nibbles_16x16, a lane's 16 values of a 64-K step in 8 bytes)."""
    bits, problems = d.weight_bits, []
    if bits * d.packing != 8:
        problems.append(
            f"{bits}-bit weights are handled packed {8 // bits} per byte (this dtype: packing "
            f"{d.packing})"
        )
    if d.activation_bits == 16:
        if d.weight_layout != "preshuffle_16x16":
            problems.append(
                f"{bits}-bit weights dequantized into 16-bit activations read the packed bytes "
                f"preshuffled (weight_layout preshuffle_16x16), not {d.weight_layout}"
            )
        group = d.group_scale
        k_pack = LANE_LOAD_BYTES * 8 // bits
        if group is None or group.group != k_pack or group.dtype != GROUP_SCALE_DTYPE:
            problems.append(
                f"{bits}-bit weights with 16-bit activations are dequantized in registers by a "
                f"per_group scale applied to the weights with group {k_pack} (one 16-byte lane "
                f"load) in {GROUP_SCALE_DTYPE}; declare {{kind: per_group, dtype: "
                f"{GROUP_SCALE_DTYPE}, applied: weights, group: {k_pack}}}"
            )
        return problems
    if d.activation != "i8":
        problems.append(
            f"{bits}-bit weights are handled with 16-bit activations (dequantized) or int8 ones "
            f"(unpacked to int8 for the i8 MFMA), not {d.activation_bits}-bit {d.activation}"
        )
    if d.weight_layout != "split_nibbles_16x16":
        problems.append(
            f"{bits}-bit weights unpacked to int8 read the int8 preshuffle packed in runs of 8 "
            f"(weight_layout split_nibbles_16x16, upstream's W4A8), not {d.weight_layout}"
        )
    if d.group_scale is not None:
        problems.append(
            f"{bits}-bit weights unpacked to int8 take their scales in the epilogue (per_channel); "
            "a per_group scale on the weights is not generated for int8 activations"
        )
    return problems + _epilogue_scale_problems(d)


def _staging_problems(v: Any) -> list[str]:
    """The activation tile's LDS staging (valid tile_m and tile_k): whole swizzle rows, an
    equal share per thread, and LDS room for two buffers."""
    problems = []
    row_bytes = v.tile_k * v.dtype.activation_bits // 8
    # The template's SWIZZLE = min(8, row units): a row of 16-byte units is XOR-permuted by
    # (row % SWIZZLE), which needs whole groups of SWIZZLE units (a 64-byte fp8 row at tile_k
    # 64: 4 units, swizzled by row % 4).
    units = row_bytes // LANE_LOAD_BYTES
    if units not in (1, 2, 4) and row_bytes % (8 * LANE_LOAD_BYTES):
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
