"""What the kernel templates can handle (checked when variants.yaml is validated)."""

from types import SimpleNamespace

from moegen.backends.flydsl.limits import check_tiles


def mfma(k):
    return SimpleNamespace(op=f"mfma_f32_16x16x{k}", k=k, width=k // 4)


def tiles(**over):
    v = dict(
        addressing="per_expert",
        stage=1,
        split_k=1,
        tile_m=16,
        tile_n=64,
        tile_k=64,
        out_dtype="float32",
        archs=("gfx942", "gfx950"),
        dtype=SimpleNamespace(weight_bits=16, mfma={"gfx942": mfma(16), "gfx950": mfma(32)}),
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
        "tile_k=16 must be a positive multiple of the gfx950 MFMA's k=32"
    ]
    assert check_tiles(tiles(stage=2, split_k=2)) == [
        "split-K (split_k >= 2) exists for stage 1 only"
    ]
    assert check_tiles(tiles(stage=2, out_dtype="bfloat16")) == []  # packed atomics or reduce
    assert "is not one the template can store" in check_tiles(tiles(stage=2, out_dtype="int8"))[0]
    assert check_tiles(tiles(addressing="flat")) == [
        "addressing 'flat' is not one of ['whole_tensor', 'per_expert']"
    ]
