"""The address model against spans computed by hand."""

from __future__ import annotations

import pytest

from moegen.core import address_model as am
from moegen.core import sweep

GIB = 2**30


def variant(stage=1, addressing="whole_tensor", bits=16, split_k=1, **kw):
    v = {
        "name": f"moe_s{stage}_x_{addressing}" + (f"_splitk{split_k}" if split_k != 1 else ""),
        "stage": stage,
        "dtype": "x",
        "addressing": addressing,
        "split_k": split_k,
        "tile_m": 16,
        "tile_n": 64,
        "tile_k": 64,
        "doweight": False,
        "out_dtype": "float32",
        "archs": ["gfx942"],
        "act_bits": 16,
        "weight_bits": bits,
        "weight_pack": 1,
        # stage 1 stores in the activation dtype (an unscaled dtype has no 16-bit intermediate)
        "out_bits": 32 if stage == 2 else kw.get("act_bits", 16),
        "preferred": False,
    }
    v.update(kw)
    return v


def span(v, p, tensor):
    return next(s for s in am.spans(v, p) if s.tensor.startswith(tensor))


def test_stage1_weight_spans_by_hand():
    p = am.Problem(experts=128, model_dim=6144, inter=1408, tokens=16, topk=4)
    whole = span(variant(), p, "w1")
    assert whole.span_bytes == 128 * 2 * 1408 * 6144 * 2 == 4_429_185_024  # 4.12 GiB
    assert not whole.fits
    per = span(variant(addressing="per_expert"), p, "w1")
    assert per.span_bytes == 2 * 1408 * 6144 * 2 and per.fits
    at1280 = span(variant(), am.Problem(128, 6144, 1280, 16, 4), "w1")
    assert at1280.span_bytes == 4_026_531_840 and at1280.fits  # 3.75 GiB


def test_other_tensors_by_hand():
    p = am.Problem(experts=128, model_dim=6144, inter=3072, tokens=2048, topk=4)
    v = variant(split_k=2)
    assert span(v, p, "x").span_bytes == 2048 * 6144 * 2
    assert span(v, p, "gate_up").span_bytes == 2048 * 4 * 2 * 3072 * 4
    assert span(v, p, "out").span_bytes == 2048 * 4 * 3072 * 2
    assert span(v, p, "sorted_token_ids").span_bytes == (2048 * 4 + 128 * 16 - 4) * 4
    s2 = variant(stage=2)
    assert span(s2, p, "a2").span_bytes == 2048 * 4 * 3072 * 2
    assert span(s2, p, "w2").span_bytes == 128 * 6144 * 3072 * 2
    assert span(s2, p, "out").span_bytes == 2048 * 6144 * 4


@pytest.mark.parametrize(
    "stage,bits,lo,hi",
    [
        (1, 16, 1280, 1408),  # the seed's line: 3.75 GiB ok, 4.12 GiB broken
        (2, 16, 2688, 2816),
        (1, 8, 2560, 2816),  # a 1-byte weight: twice as far
        (2, 8, 5376, 5632),
        (1, 4, 5120, 5632),  # int4: four times
    ],
)
def test_line_between(stage, bits, lo, hi):
    v = variant(stage=stage, bits=bits)
    first = am.first_failing_inter(v, experts=128, model_dim=6144, tokens=16, topk=4)
    assert lo < first <= hi
    assert am.addressable(v, am.Problem(128, 6144, first - 1, 16, 4))
    assert not am.addressable(v, am.Problem(128, 6144, first, 16, 4))


def test_first_failing_inter_exact():
    # 2**32 / (128 * 2 * 6144 * 2) = 1365.33 -> 1366 is the first inter whose W1 reaches 2**32
    assert am.first_failing_inter(variant(), 128, 6144, 16, 4) == 1366


def test_per_expert_line_is_one_slab():
    v = variant(addressing="per_expert")
    first = am.first_failing_inter(v, 128, 6144, 16, 4)
    assert first == -(-(2**32) // (2 * 6144 * 2))
    # E does not matter once the base is per expert
    assert am.first_failing_inter(v, 4, 6144, 16, 4) == first


def test_large_token_count_hits_the_activation_line():
    v = variant(addressing="per_expert", stage=2)
    msgs = am.check(v, experts=8, model_dim=8192, inter=512, tokens=2**19, topk=8)
    assert any("a2" in m for m in msgs)
    assert all("Split the batch" in m or "slab" in m for m in msgs)


def test_check_messages_name_tensor_bytes_limit_and_alternative():
    msgs = am.check(variant(), experts=128, model_dim=6144, inter=3072, tokens=16, topk=4)
    assert len(msgs) == 1
    m = msgs[0]
    assert "w1" in m and "9,663,676,416 bytes" in m and "4,294,967,296" in m
    assert "moe_s1_x_per_expert" in m


def test_sweep_points_straddle_the_line():
    v = variant()
    pts = {p.label: p for p in sweep.sweep(v, 128, 6144, 16, 4, production_inter=3072)}
    assert pts["safe"].inter == 384 and pts["safe"].addressable
    assert pts["below"].inter == 1344 and pts["below"].addressable
    assert pts["above"].inter == 1408 and not pts["above"].addressable
    assert not pts["production"].addressable
    assert all(p.inter % 64 == 0 for p in pts.values())


def test_max_tokens_is_the_largest_fitting_count():
    v = variant(stage=2, addressing="per_expert")
    p = am.Problem(8, 8192, 512, 2**19, 8)
    t = am.max_tokens(v, p, "a2")
    assert t * 8 * 512 * 2 < 2**32 <= (t + 1) * 8 * 512 * 2


def int4_variant(stage=1, addressing="whole_tensor"):
    """An int4_bf16-like record: 4-bit weights packed 2 per byte, a bf16 per-group scale."""
    group = {"kind": "per_group", "operand": "weight", "dtype": "bfloat16", "applied": "weights", "group": 32}
    return variant(stage=stage, addressing=addressing, bits=4, weight_pack=2, scales=[group], tile_k=128)


def test_int4_weight_and_group_scale_spans_by_hand():
    """int4 W1 [E, 2 * inter, model_dim] is E * 2 * inter * model_dim / 2 bytes (offsets count
    stored bytes); its scale [E, 2 * inter, model_dim / 32] bf16 is a sixteenth of a bf16 W1,
    addressed like the weight: one expert's slab per_expert, every expert's whole_tensor."""
    p = am.Problem(experts=128, model_dim=6144, inter=5462, tokens=16, topk=4)
    w1 = span(int4_variant(), p, "w1")
    assert w1.span_bytes == 128 * 2 * 5462 * 6144 // 2 == 4_295_491_584 and not w1.fits
    below = span(int4_variant(), am.Problem(128, 6144, 5461, 16, 4), "w1")
    assert below.span_bytes == 4_294_705_152 < 2**32 and below.fits
    scale = span(int4_variant(), p, "w1_scale")
    assert scale.shape == (128, 2 * 5462, 192) and scale.resource == "whole tensor"
    assert scale.span_bytes == 128 * 2 * 5462 * 192 * 2 and scale.fits
    per = span(int4_variant(addressing="per_expert"), p, "w1_scale")
    assert per.span_bytes == 2 * 5462 * 192 * 2 and per.resource == "one expert's slab"
    s2 = span(int4_variant(stage=2), am.Problem(128, 6144, 3072, 16, 4), "w2_scale")
    assert s2.shape == (128, 6144, 96) and s2.span_bytes == 128 * 6144 * 96 * 2


def test_int4_own_line_is_inter_5462():
    """Issue 11's line for int4 W1 at E=128, model_dim 6144: 2**32 / (128 * 2 * 6144 / 2)
    = 5461.33, so inter 5462 is the first unaddressable one (the scale never limits)."""
    assert am.first_failing_inter(int4_variant(), 128, 6144, 16, 4) == 5462
    assert am.first_failing_inter(int4_variant(stage=2), 128, 6144, 16, 4) == 10923
    v = int4_variant()
    msgs = am.check(v, experts=128, model_dim=6144, inter=5504, tokens=16, topk=4)
    assert len(msgs) == 1 and "w1 [128, 11008, 6144] spans 4,328,521,728 bytes" in msgs[0]
