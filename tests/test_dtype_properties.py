"""Dtype properties for scaled dtypes (variants.yaml `dtypes:`): what the loader builds from the
shipped fp8, int8 and int8smooth entries, and what the FlyDSL limits accept or refuse by
property."""

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
    variants = [  # the FlyDSL ones: the Triton fp8 variants are tests/test_triton_fp8.py's
        v
        for v in enumerate_variants(ROOT / "variants.yaml")
        if v.dtype.name == "fp8" and v.backend == "flydsl"
    ]
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
        info = v.record
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
    # fp8 activations with int4 weights and epilogue scales: not generated (int4 is dequantized
    # into 16-bit activations by a per-group scale, or unpacked into int8 activations' type for
    # the i8 MFMA, W4A8, from upstream's split_nibbles layout)
    packed = limits.check_tiles(replace(v, dtype=replace(v.dtype, weight_bits=4, packing=2)))
    assert any("16-bit activations (dequantized) or int8 ones" in p for p in packed), packed
    assert any("weight_layout split_nibbles_16x16" in p for p in packed), packed


def _fp8(fp8_variants, stage: int, addressing: str):
    (v,) = [
        v
        for v in fp8_variants
        if v.stage == stage and v.addressing == addressing and v.max_tokens is not None
    ]
    return v.record


def test_address_model_covers_the_scales(fp8_variants):
    from moegen.core.address_model import Problem, first_failing_inter, spans

    p = Problem(experts=128, model_dim=6144, inter=3072, tokens=16, topk=4)
    whole = {s.tensor: s for s in spans(_fp8(fp8_variants, 1, "whole_tensor"), p)}
    per = {s.tensor: s for s in spans(_fp8(fp8_variants, 1, "per_expert"), p)}
    assert whole["w1_scale"].shape == (128, 6144) and whole["w1_scale"].span_bytes == 128 * 6144 * 4
    assert whole["w1_scale"].resource == "whole tensor"
    assert per["w1_scale"].resource == "one expert's slab" and per["w1_scale"].span_bytes == 6144 * 4
    assert whole["x_scale"].span_bytes == 16 * 4
    assert whole["out"].span_bytes == 16 * 4 * 3072 * 2  # the bf16 intermediate, not 1-byte x
    s2 = {s.tensor: s for s in spans(_fp8(fp8_variants, 2, "whole_tensor"), p)}
    assert s2["a2_scale"].shape == (64,) and s2["w2_scale"].shape == (128, 6144)
    # 1-byte W1 at E=128, model_dim 6144 crosses 2**32 bytes at inter 2731 (bf16: 1366)
    assert first_failing_inter(_fp8(fp8_variants, 1, "whole_tensor"), 128, 6144, 16, 4) == 2731


def test_guard_names_missing_and_misshapen_scales(fp8_variants):
    import torch

    from moegen.runtime import launch, routing

    v = _fp8(fp8_variants, 1, "per_expert")
    x = torch.empty(8, 256, dtype=torch.float8_e4m3fnuz)
    w = torch.empty(4, 256, 256, dtype=torch.float8_e4m3fnuz)
    ids = torch.tensor([[0, 1]] * 8, dtype=torch.int32)
    sorted_routing = routing.moe_sorting(ids, torch.full((8, 2), 0.5), 4, v["tile_m"])
    dtypes = {"gfx942": "float8_e4m3fnuz"}

    def problems(**scales):
        try:
            launch.validate(v, x, w, *sorted_routing, topk=2, act_dtypes=dtypes, weight_dtypes=dtypes, scales=scales)
        except ValueError as exc:
            return str(exc)
        return ""

    assert problems(**launch.empty_scales(v, x, w)) == ""
    msg = problems(x_scale=torch.empty(8))
    assert "w1_scale: missing; the dtype declares a float32 [experts, rows of w1] scale" in msg
    msg = problems(x_scale=torch.empty(7), w1_scale=torch.empty(4, 256, dtype=torch.float16))
    assert "x_scale: expected shape [8] [rows of x], got [7]" in msg
    assert "w1_scale: expected dtype float32, got float16" in msg
    msg = problems(**launch.empty_scales(v, x, w), a2_scale=torch.empty(8))
    assert "a2_scale: this variant's dtype declares no such scale" in msg


def test_int8_and_int8smooth_declare_an_i32_accumulator_and_their_rows():
    """int8: fp8's scales with the i8 MFMA's i32 accumulator; int8smooth: the same with x
    expanded per (token, slot), a property its stage-1 modules record and its launcher reads."""
    variants = [
        v
        for v in enumerate_variants(ROOT / "variants.yaml")
        if v.dtype.name in ("int8", "int8smooth") and v.backend == "flydsl"
    ]
    if not variants:
        pytest.skip("variants.yaml declares no int8 variant")
    for v in variants:
        dt = v.dtype
        assert dt.accumulator == "i32" and dt.intermediate == "bfloat16"
        assert {m.op.split("_")[1] for m in dt.mfma.values()} == {"i32"}
        assert dict(dt.act_torch) == {"gfx942": "int8", "gfx950": "int8"}
        assert v.record["accumulator"] == "i32"
        expanded = dt.name == "int8smooth"
        assert dt.activation_rows == ("expanded" if expanded else "token")
        assert v.record.get("act_rows") == ("expanded" if expanded else None)
        assert limits.check_tiles(v) == [], v.name
        text = (ROOT / "generated" / "flydsl" / f"{v.name}.py").read_text()
        assert 'acc="i32")' in text  # the MFMA table carries it
    assert {v.stage for v in variants if v.dtype.name == "int8smooth"} == {1}  # stage 2 is int8's
    i32_k2 = replace(variants[0], split_k=2)
    assert any("an i32 accumulator is converted to f32" in p for p in limits.check_tiles(i32_k2))
