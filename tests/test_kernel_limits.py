"""What the kernel templates can handle (checked when variants.yaml is validated)."""

from types import SimpleNamespace

from moegen.backends.flydsl.limits import check_tiles


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
            packing=1,
            scales=(),
            accumulator="f32",
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
        scales=("per_token", "per_channel"),
        accumulator="f32",
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
    assert any("equal 8 or 16-bit activations and weights only" in p for p in check_tiles(tiles(dtype=mixed, tile_m=32)))
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
