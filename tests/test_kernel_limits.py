"""What the kernel templates can handle (checked when variants.yaml is validated)."""

from types import SimpleNamespace

from moegen.backends.flydsl.limits import check_tiles
from moegen.core.vocabulary import Scale


def mfma(k, operand="bf16", width=None):
    return SimpleNamespace(op=f"mfma_f32_16x16x{k}", k=k, operand=operand, width=width or k // 4)


def tiles(**over):
    v = dict(
        addressing="per_expert",
        stage=1,
        split_k=1,
        tile_m=16,
        tile_n=64,
        tile_k=64,
        out_dtype="float32",
        accumulate="atomic",
        archs=("gfx942", "gfx950"),
        dtype=SimpleNamespace(
            weight_bits=16,
            activation_bits=16,
            activation="bf16",
            weight_layout="preshuffle_16x16",
            packing=1,
            scales=(),
            accumulator="f32",
            group_scale=None,
            mfma={"gfx942": mfma(16), "gfx950": mfma(32)},
        ),
    )
    v.update(over)
    return SimpleNamespace(**v)


def test_check_tiles():
    assert check_tiles(tiles()) == []
    assert check_tiles(tiles(tile_m=24)) == [
        "tile_m=24 must be a positive multiple of 16 (MFMA rows)"
    ]
    assert check_tiles(tiles(tile_n=96)) == [
        "tile_n=96 must be a positive multiple of 64 (4 waves x 16 MFMA columns)"
    ]
    assert check_tiles(tiles(tile_k=16)) == [
        "tile_k=16 must be a positive multiple of the gfx950 MFMA's k=32",
        "tile_k=16 must be a positive multiple of 32 (the preshuffled K block of 16-bit weights)",
    ]
    assert check_tiles(tiles(stage=2, split_k=2)) == [
        "split-K (split_k >= 2) exists for stage 1 only"
    ]
    assert check_tiles(tiles(stage=2, out_dtype="bfloat16")) == []  # packed atomics or reduce
    assert "is not one the template can store" in check_tiles(tiles(stage=2, out_dtype="int8"))[0]
    assert check_tiles(tiles(addressing="flat")) == [
        "addressing 'flat' is not one of ['whole_tensor', 'per_expert']"
    ]


def test_preshuffled_k_loop_limits():
    """What the pipelined, preshuffled K loop adds: 16-bit operands, whole K blocks, an
    activation tile that splits over the threads and fits LDS double-buffered."""
    for m in (16, 32, 64, 128):
        for n in (64, 128):
            for k in (64, 128):
                assert check_tiles(tiles(tile_m=m, tile_n=n, tile_k=k)) == [], (m, n, k)
    # 8-bit operands: 8 per lane in one i64 (k/4 = 8 of 8 bits), K blocks of 64 elements.
    fp8 = SimpleNamespace(
        weight_bits=8,
        activation_bits=8,
        packing=1,
        scales=(Scale("per_token", "float32", "epilogue"), Scale("per_channel", "float32", "epilogue")),
        accumulator="f32",
        group_scale=None,
        mfma={"gfx942": mfma(32, "i64", 1), "gfx950": mfma(32, "i64", 1)},
    )
    assert check_tiles(tiles(dtype=fp8, tile_m=32)) == []
    assert check_tiles(tiles(dtype=fp8, tile_m=128, tile_k=64)) == []  # 64-byte rows, row % 4
    # scales are applied in the split_k 1 epilogues and the float32 stage-2 one only
    scaled_only = "a scaled dtype's epilogue is generated for split_k 1 and a float32 stage-2"
    assert scaled_only in check_tiles(tiles(dtype=fp8, tile_m=32, split_k=2))[0]
    assert scaled_only in check_tiles(tiles(dtype=fp8, tile_m=32, stage=2, out_dtype="bfloat16"))[0]
    assert check_tiles(tiles(dtype=fp8, tile_m=32, tile_k=32)) == [
        "tile_k=32 must be a positive multiple of 64 (the preshuffled K block of 8-bit weights)"
    ]
    # an i32 accumulator (int8's) is converted to f32 in the fused epilogues only: unscaled, it
    # is accepted there and refused with split-K partials and the packed 16-bit stage-2 epilogue
    i32 = SimpleNamespace(**{**vars(fp8), "scales": (), "accumulator": "i32"})
    i32_only = "an i32 accumulator is converted to f32 in the fused epilogues only"
    assert check_tiles(tiles(dtype=i32, tile_m=32)) == []
    assert check_tiles(tiles(dtype=i32, tile_m=32, stage=2)) == []
    assert i32_only in check_tiles(tiles(dtype=i32, tile_m=32, split_k=2))[0]
    assert i32_only in check_tiles(tiles(dtype=i32, tile_m=32, stage=2, out_dtype="float16"))[0]
    mixed = SimpleNamespace(**{**vars(fp8), "activation_bits": 16})
    assert any("equal 8 or 16-bit activations and weights, or packed 4-bit" in p for p in check_tiles(tiles(dtype=mixed, tile_m=32)))
    bf16_scale = SimpleNamespace(**{**vars(fp8), "scales": (Scale("per_token", "bfloat16", "epilogue"),)})
    assert check_tiles(tiles(dtype=bf16_scale, tile_m=32)) == [
        "the epilogue loads per_token scales as float32, not bfloat16"
    ]
    assert check_tiles(tiles(tile_m=256, tile_k=128)) == [
        "tile 256x128: the double-buffered activation tile (and any epilogue scratch) needs "
        "131072 bytes of LDS, over 65536; use a smaller tile_m or tile_k"
    ]
    assert check_tiles(tiles(tile_m=64, tile_k=96)) == [
        "tile_k=96: an LDS activation row of 192 bytes is not a multiple of the 128 bytes the "
        "(row % 8) swizzle permutes; use tile_k = 64 or 128"
    ]
    # a 64-byte row (4 units) is swizzled by row % 4: only the per-thread split fails here
    assert check_tiles(tiles(tile_m=16, tile_k=32)) == [
        "tile 16x32: the 1024-byte activation tile does not split into 8- or 16-byte chunks, the "
        "same number per thread over 256 threads",
    ]


def int4(**over):
    """int4_bf16 (W4A16): 4-bit weights 2 per byte, bf16 activations and MFMA, group 32 bf16."""
    group = Scale("per_group", "bfloat16", "weights", 32)
    d = dict(
        weight_bits=4,
        activation_bits=16,
        activation="bf16",
        weight_layout="preshuffle_16x16",
        packing=2,
        scales=(group,),
        group_scale=group,
        accumulator="f32",
        mfma={"gfx942": mfma(16, "i16"), "gfx950": mfma(32)},
    )
    d.update(over)
    return SimpleNamespace(**d)


def test_int4_dequantized_weights():
    """Packed int4 weights: one 16 B lane load is 32 values of one row (K block 128), which must
    be one scale group; 16-bit activations; K tiles of whole 128-element blocks."""
    for m in (32, 128):
        assert check_tiles(tiles(dtype=int4(), tile_m=m, tile_k=128)) == [], m
    assert check_tiles(tiles(dtype=int4(), tile_m=32, tile_k=64)) == [
        "tile_k=64 must be a positive multiple of 128 (the preshuffled K block of 4-bit weights)"
    ]
    g64 = Scale("per_group", "bfloat16", "weights", 64)
    problems = check_tiles(tiles(dtype=int4(scales=(g64,), group_scale=g64), tile_m=32, tile_k=128))
    assert len(problems) == 1 and "with group 32 (one 16-byte lane load)" in problems[0]
    f32 = Scale("per_group", "float32", "weights", 32)
    assert "in bfloat16" in check_tiles(tiles(dtype=int4(scales=(f32,), group_scale=f32), tile_m=32, tile_k=128))[0]
    assert "in bfloat16" in check_tiles(tiles(dtype=int4(scales=(), group_scale=None), tile_m=32, tile_k=128))[0]
    assert "packed 2 per byte (this dtype: packing 1)" in check_tiles(
        tiles(dtype=int4(packing=1), tile_m=32, tile_k=128)
    )[0]
    # a per-group weight scale on unpacked weights, or packing without 4-bit weights: refused
    g32 = Scale("per_group", "bfloat16", "weights", 32)
    bf16_grouped = tiles().dtype.__dict__ | {"scales": (g32,), "group_scale": g32}
    assert any(
        "dequantizes packed 4-bit weights only" in p
        for p in check_tiles(tiles(dtype=SimpleNamespace(**bf16_grouped)))
    )
    packed16 = tiles().dtype.__dict__ | {"packing": 2}
    assert check_tiles(tiles(dtype=SimpleNamespace(**packed16))) == [
        "packing 2 is handled for 4-bit weights only"
    ]


def w4a8(**over):
    """int4 (W4A8): 4-bit weights 2 per byte in the split_nibbles layout, int8 activations and
    the i8 MFMA (i32 accumulator), per-token and per-channel float32 scales in the epilogue."""
    scales = (Scale("per_token", "float32", "epilogue"), Scale("per_channel", "float32", "epilogue"))
    i8 = SimpleNamespace(op="mfma_i32_16x16x32_i8", k=32, operand="i64", width=1)
    d = dict(
        weight_bits=4,
        activation_bits=8,
        activation="i8",
        weight_layout="split_nibbles_16x16",
        packing=2,
        scales=scales,
        group_scale=None,
        accumulator="i32",
        mfma={"gfx942": i8, "gfx950": i8},
    )
    d.update(over)
    return SimpleNamespace(**d)


def test_int4_unpacked_to_int8():
    """W4A8: an 8 B lane load is a lane's 16 values of a 64-K block (the int8 layout's K block),
    so K tiles of whole 64-element blocks; the split_nibbles layout, an i8 activation and no
    per-group weight scale, each refused with its reason."""
    for m, k in ((32, 128), (128, 128), (128, 64)):
        assert check_tiles(tiles(dtype=w4a8(), tile_m=m, tile_k=k)) == [], (m, k)
    assert check_tiles(tiles(dtype=w4a8(), tile_m=32, tile_k=32)) == [
        "tile_k=32 must be a positive multiple of 64 (the preshuffled K block of 4-bit weights)"
    ]
    (problem,) = check_tiles(tiles(dtype=w4a8(weight_layout="preshuffle_16x16"), tile_m=32, tile_k=128))
    assert "weight_layout split_nibbles_16x16, upstream's W4A8), not preshuffle_16x16" in problem
    (problem,) = check_tiles(tiles(dtype=w4a8(activation="fp8_e4m3"), tile_m=32, tile_k=128))
    assert "int8 ones (unpacked to int8 for the i8 MFMA), not 8-bit fp8_e4m3" in problem
    g32 = Scale("per_group", "bfloat16", "weights", 32)
    problems = check_tiles(tiles(dtype=w4a8(scales=(g32,), group_scale=g32), tile_m=32, tile_k=128))
    assert any("take their scales in the epilogue (per_channel)" in p for p in problems), problems
    # and W4A16 refuses the W4A8 layout
    (problem,) = check_tiles(tiles(dtype=int4(weight_layout="split_nibbles_16x16"), tile_m=32, tile_k=128))
    assert "read the packed bytes preshuffled (weight_layout preshuffle_16x16)" in problem
