"""Safe dispatch over the generated registry."""

from __future__ import annotations

import pytest
import torch

import generated
from moegen.runtime.dispatch import NoAddressableVariant, problem_of
from moegen.spec.expand import enumerate_variants


def meta(*shape):
    return torch.empty(*shape, dtype=torch.bfloat16, device="meta")


def test_registry_lists_every_variant_once():
    names = [e.name for e in generated.VARIANTS]
    assert sorted(names) == [v.name for v in enumerate_variants("variants.yaml")]
    for e in generated.VARIANTS:
        assert e.module == f"generated.{e.backend}.{e.name}"


def test_nine_gib_weight_picks_per_expert():
    kernel = generated.auto_stage1("bf16", meta(16, 6144), meta(128, 2 * 3072, 6144), topk=4)
    assert kernel.VARIANT["name"] == "moe_s1_bf16_per_expert_k1"
    assert kernel.VARIANT["addressing"] == "per_expert"


def test_small_shape_picks_the_preferred_variant():
    kernel = generated.auto_stage1("bf16", meta(16, 6144), meta(128, 2 * 384, 6144), topk=4)
    assert kernel.VARIANT["name"] == "moe_s1_bf16_whole_tensor_k1" and kernel.VARIANT["preferred"]
    kernel = generated.auto_stage2("fp16", meta(64, 2688), meta(128, 6144, 2688), topk=4)
    assert kernel.VARIANT["name"] == "moe_s2_fp16_whole_tensor"


def test_split_k_is_part_of_the_request():
    e = generated.select_variant(
        "bf16", 1, 2, experts=128, model_dim=6144, inter=1408, tokens=16, topk=4
    )
    assert e.name == "moe_s1_bf16_per_expert_k2"


def test_impossible_shape_lists_every_candidate_and_why():
    with pytest.raises(NoAddressableVariant) as info:
        generated.auto_stage2("bf16", meta(64, 400_000), meta(128, 6144, 400_000), topk=4)
    msg = str(info.value)
    assert "moe_s2_bf16_whole_tensor (preferred): " in msg and "moe_s2_bf16_per_expert: " in msg
    assert "w2 [128, 6144, 400000] spans" in msg  # whole tensor
    assert "through one expert's slab buffer resource" in msg  # the per-expert slab alone


def test_undeclared_combination_says_what_is_declared():
    with pytest.raises(
        NoAddressableVariant, match=r"no variant in variants.yaml has dtype=bf16 stage=1 split_k=3"
    ):
        generated.select_variant(
            "bf16", 1, 3, experts=4, model_dim=256, inter=128, tokens=8, topk=2
        )


def test_problem_of_reads_both_stages():
    assert problem_of(1, (16, 6144), (128, 6144, 6144), 4) == dict(
        experts=128, model_dim=6144, inter=3072, tokens=16, topk=4
    )
    assert problem_of(2, (64, 3072), (128, 6144, 3072), 4) == dict(
        experts=128, model_dim=6144, inter=3072, tokens=16, topk=4
    )
    with pytest.raises(ValueError, match="3-D weight"):
        problem_of(1, (16, 6144), (6144, 6144), 4)


def test_dispatch_stays_within_the_asked_backend():
    """The same problems through the Triton variants: Triton's whole_tensor while it can
    address the weight, its per_expert past 2**31 elements, never a FlyDSL module."""
    x = meta(16, 6144)
    small = generated.auto_stage1("bf16", x, meta(128, 2 * 1344, 6144), topk=4, backend="triton")
    large = generated.auto_stage1("bf16", x, meta(128, 2 * 3072, 6144), topk=4, backend="triton")
    assert small.VARIANT["name"] == "moe_s1_bf16_whole_tensor_k1_triton"
    assert large.VARIANT["name"] == "moe_s1_bf16_per_expert_k1_triton"
    assert (
        generated.auto_stage1("bf16", x, meta(128, 2 * 1344, 6144), topk=4).VARIANT["name"]
        == "moe_s1_bf16_whole_tensor_k1"
    )
