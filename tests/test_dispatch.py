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
    assert kernel.VARIANT["name"] == "moe_s1_bf16_per_expert"
    assert kernel.VARIANT["addressing"] == "per_expert"


def test_small_shape_picks_the_preferred_variant():
    kernel = generated.auto_stage1("bf16", meta(16, 6144), meta(128, 2 * 384, 6144), topk=4)
    assert kernel.VARIANT["name"] == "moe_s1_bf16_whole_tensor" and kernel.VARIANT["preferred"]
    kernel = generated.auto_stage2("fp16", meta(64, 2688), meta(128, 6144, 2688), topk=4)
    assert kernel.VARIANT["name"] == "moe_s2_fp16_whole_tensor"


def test_split_k_is_part_of_the_request():
    e = generated.select_variant(
        "bf16", 1, 2, experts=128, model_dim=6144, inter=1408, tokens=16, topk=4
    )
    assert e.name == "moe_s1_bf16_per_expert_splitk2"


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


# --- tiles per regime ---------------------------------------------------------------------


def _regimes(stage: int, split_k: int, addressing: str) -> list:
    """The shipped family's tiles, in token order (from the registry)."""
    fam = [
        e
        for e in generated.VARIANTS
        if (e.dtype, e.stage, e.split_k, e.addressing) == ("bf16", stage, split_k, addressing)
        and e.backend == "flydsl"  # Triton keeps its regimes inside one module (`configs:`)
        and (stage == 1 or (e.out_dtype, e.accumulate) == ("float32", "atomic"))
    ]
    return sorted(fam, key=lambda e: e.min_tokens)


@pytest.mark.parametrize("stage,split_k", [(1, 1), (1, 2), (2, 1)])
@pytest.mark.parametrize("addressing", ["whole_tensor", "per_expert"])
def test_shipped_regimes_cover_every_token_count_once(stage, split_k, addressing):
    fam = _regimes(stage, split_k, addressing)
    assert len(fam) >= 2, "variants.yaml ships a decode and a prefill tile"
    assert fam[0].min_tokens == 1 and fam[-1].max_tokens is None
    for a, b in zip(fam, fam[1:]):
        assert b.min_tokens == a.max_tokens + 1  # contiguous, no overlap
    for e in fam:  # the module records the same regime the registry dispatches on
        assert (e.variant["min_tokens"], e.variant["max_tokens"]) == (e.min_tokens, e.max_tokens)


@pytest.mark.parametrize("stage", [1, 2])
def test_dispatch_picks_the_tile_by_token_count(stage):
    fam = _regimes(stage, 1, "whole_tensor")
    edge = fam[0].max_tokens
    dims = dict(experts=128, model_dim=6144, inter=384, topk=4)
    picked = {
        t: generated.select_variant("bf16", stage, 1, tokens=t, **dims).name
        for t in (1, edge, edge + 1, 2048)
    }
    assert picked[1] == picked[edge] == fam[0].name
    assert picked[edge + 1] == picked[2048] == fam[1].name
    assert fam[1].load().VARIANT["tile_m"] > fam[0].load().VARIANT["tile_m"]


def test_prefill_tile_reads_each_expert_once_per_n_tile_at_seed_shape():
    """At 2048 tokens x topk 4 over 128 experts (random routing), the prefill tile covers every
    expert's routed rows with one M-block, so each expert's weights are read once per N tile."""
    from moegen.runtime import routing

    e = generated.select_variant(
        "bf16", 1, 1, experts=128, model_dim=6144, inter=3072, tokens=2048, topk=4
    )
    tile_m = e.variant["tile_m"]
    g = torch.Generator().manual_seed(0)
    topk_ids = torch.stack([torch.randperm(128, generator=g)[:4] for _ in range(2048)])
    _, _, expert_ids, num_valid = routing.moe_sorting(
        topk_ids.to(torch.int32), torch.ones(2048, 4), 128, tile_m
    )
    valid_blocks = int(num_valid.flatten()[0]) // tile_m  # blocks past it carry no rows
    blocks_per_expert = torch.bincount(expert_ids[:valid_blocks].long(), minlength=128)
    rows = torch.bincount(topk_ids.flatten(), minlength=128)
    assert int(rows.max()) <= tile_m, "the busiest expert needs a second M-block"
    assert blocks_per_expert[rows > 0].max().item() == 1


def test_a_family_without_an_open_tile_is_refused_by_dispatch():
    from moegen.runtime.dispatch import RegisteredVariant, select

    only_decode = [
        RegisteredVariant("a", "m", "bf16", 1, 1, "per_expert", False, 1, 64),
    ]
    with pytest.raises(NoAddressableVariant, match="no tile of the variants .* serves 65 tokens"):
        select(only_decode, dtype="bf16", stage=1, experts=4, model_dim=256, inter=128, tokens=65, topk=2)


# --- stage 2's 16-bit outputs -------------------------------------------------------------


def test_stage2_defaults_to_float32_output():
    kernel = generated.auto_stage2("bf16", meta(64, 384), meta(128, 6144, 384), topk=4)
    assert kernel.VARIANT["out_dtype"] == "float32" and kernel.VARIANT["accumulate"] == "atomic"


@pytest.mark.parametrize(
    "dtype,out_dtype,arch,accumulate",
    [
        ("fp16", "float16", "gfx942", "atomic"),  # pk_add_f16 on both archs
        ("fp16", "float16", "gfx950", "atomic"),
        ("bf16", "bfloat16", "gfx950", "atomic"),  # pk_add_bf16 exists on gfx950 only
        ("bf16", "bfloat16", "gfx942", "reduce"),  # ... so gfx942 stores per slot and sums
    ],
)
def test_16_bit_output_uses_packed_atomics_where_the_arch_has_them(dtype, out_dtype, arch, accumulate):
    e = generated.select_variant(
        dtype, 2, 1, out_dtype=out_dtype, arch=arch,
        experts=128, model_dim=6144, inter=3072, tokens=16, topk=4,
    )
    assert (e.out_dtype, e.accumulate) == (out_dtype, accumulate)
    assert e.addressing == "per_expert"  # the 9 GiB weight
    assert arch in e.load().VARIANT["archs"]


def test_undeclared_output_dtype_is_refused_with_what_is_asked():
    with pytest.raises(NoAddressableVariant, match="out_dtype=float16"):
        generated.select_variant(
            "bf16", 2, 1, out_dtype="float16", experts=4, model_dim=256, inter=128, tokens=8, topk=2
        )


def test_dispatch_stays_within_the_asked_backend():
    """The same problems through the Triton variants: Triton's whole_tensor while it can
    address the weight, its per_expert past 2**31 elements, never a FlyDSL module."""
    x = meta(16, 6144)
    small = generated.auto_stage1("bf16", x, meta(128, 2 * 1344, 6144), topk=4, backend="triton")
    large = generated.auto_stage1("bf16", x, meta(128, 2 * 3072, 6144), topk=4, backend="triton")
    assert small.VARIANT["name"] == "moe_s1_bf16_whole_tensor_triton"
    assert large.VARIANT["name"] == "moe_s1_bf16_per_expert_triton"
    assert (
        generated.auto_stage1("bf16", x, meta(128, 2 * 1344, 6144), topk=4).VARIANT["name"]
        == "moe_s1_bf16_whole_tensor"
    )
