"""Dtype properties for scaled dtypes (variants.yaml `dtypes:`): what the loader builds from the
shipped fp8 entry, and what the FlyDSL limits accept or refuse by property."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from moegen.backends.flydsl import limits
from moegen.core.vocabulary import Mfma, Scale
from moegen.spec.expand import enumerate_variants

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fp8_variants():
    variants = [v for v in enumerate_variants(ROOT / "variants.yaml") if v.dtype.name == "fp8"]
    if not variants:
        pytest.skip("variants.yaml declares no fp8 variant")
    return variants


def test_fp8_declares_its_scales_accumulator_and_intermediate(fp8_variants):
    dt = fp8_variants[0].dtype
    assert dt.act_scale == Scale("per_token", "float32", "epilogue")
    assert dt.weight_scale == Scale("per_channel", "float32", "epilogue")
    assert (dt.act_scale.operand, dt.weight_scale.operand) == ("activation", "weight")
    assert dt.scale("per_group") is None
    assert dt.accumulator == "f32" and dt.intermediate == "bfloat16"
    assert dict(dt.act_torch) == {"gfx942": "float8_e4m3fnuz", "gfx950": "float8_e4m3fn"}
    assert {m.op for m in dt.mfma.values()} == {"mfma_f32_16x16x32_fp8_fp8"}


def test_fp8_stage1_stores_the_intermediate_and_names_its_scales(fp8_variants):
    for v in fp8_variants:
        info = v.runtime_info
        assert [s["kind"] for s in info["scales"]] == ["per_token", "per_channel"]
        assert info["accumulator"] == "f32"
        assert v.stored_dtype == ("bfloat16" if v.stage == 1 else v.out_dtype)
        assert limits.check_tiles(v) == [], v.name


def test_k_block_follows_the_element_bits(fp8_variants):
    assert limits.k_block(16) == 32 and limits.k_block(8) == 64
    v = fp8_variants[0]
    bad = replace(v, tile_k=32)  # a multiple of the MFMA's k, not of the 8-bit K block
    assert any("multiple of 64 (the preshuffled K block of 8-bit weights)" in p for p in limits.check_tiles(bad))


def test_a_lane_operand_must_hold_k_over_4_elements(fp8_variants):
    v = fp8_variants[0]
    wrong = {a: Mfma(m.op, m.k, "i32", 1) for a, m in v.dtype.mfma.items()}  # 4 fp8, not 8
    problems = limits.check_tiles(replace(v, dtype=replace(v.dtype, mfma=wrong)))
    assert any("must hold k/4 = 8 elements of 8 bits" in p for p in problems), problems
    packed = replace(v, dtype=replace(v.dtype, weight_bits=4, packing=2))
    assert any("not yet supported by the FlyDSL templates" in p for p in limits.check_tiles(packed))
