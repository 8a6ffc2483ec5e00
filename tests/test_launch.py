"""moegen.launch: operand validation (meta tensors: nothing is allocated), plans, tile checks."""

import pytest
import torch

from moegen import launch, routing

ACT = {"gfx942": "bfloat16", "gfx950": "bfloat16"}


def variant(stage=1, addressing="per_expert", k_batch=1, **over):
    v = dict(
        name=f"moe_s{stage}_bf16_{addressing}",
        stage=stage,
        dtype="bf16",
        addressing=addressing,
        k_batch=k_batch,
        tile_m=16,
        tile_n=64,
        tile_k=64,
        doweight=False,
        out_dtype="float32",
        archs=["gfx942", "gfx950"],
        act_bits=16,
        weight_bits=16,
        weight_pack=1,
        out_bits=32,
        preferred=True,
    )
    v.update(over)
    return v


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


def routing_tensors(tokens, topk, experts, tile_m=16):
    blocks = routing.num_m_blocks(tokens, topk, experts, tile_m)
    return (
        meta(blocks * tile_m, dtype=torch.int32),
        meta(blocks * tile_m, dtype=torch.float32),
        meta(blocks, dtype=torch.int32),
        meta(1, dtype=torch.int32),
    )


def stage1(v, x, w1, routing_t=None, topk=2):
    experts = w1.shape[0] if w1.dim() == 3 else 4
    tokens = x.shape[0] if x.dim() == 2 else 8
    r = routing_t or routing_tensors(
        tokens, topk if isinstance(topk, int) and topk > 0 else 1, experts, v["tile_m"]
    )
    return launch.validate(v, x, w1, *r, topk=topk, act_dtypes=ACT, weight_dtypes=ACT)


def stage2(v, a2, w2, topk=2):
    tokens = a2.shape[0] // topk
    r = routing_tensors(tokens, topk, w2.shape[0], v["tile_m"])
    return launch.validate(v, a2, w2, *r, topk=topk, act_dtypes=ACT, weight_dtypes=ACT)


def test_valid_stage1_gives_dims():
    dims = stage1(variant(), meta(33, 256), meta(4, 256, 256))
    assert dims == launch.MoeDims(
        experts=4, model_dim=256, inter=128, tokens=33, topk=2, num_m_blocks=8
    )
    assert dims.constexprs() == {"model_dim": 256, "inter": 128, "topk": 2, "num_m_blocks": 8}


def test_valid_stage2_gives_dims():
    dims = stage2(variant(stage=2), meta(16, 128), meta(4, 256, 128))
    assert (dims.tokens, dims.model_dim, dims.inter) == (8, 256, 128)


@pytest.mark.parametrize(
    "x, w1, message",
    [
        (
            meta(8, 256, dtype=torch.float16),
            meta(4, 256, 256),
            "x: expected dtype bfloat16, got float16",
        ),
        (
            meta(8, 256),
            meta(4, 256, 256, dtype=torch.float32),
            "w1: expected dtype bfloat16, got float32",
        ),
        (
            meta(8, 256, 1),
            meta(4, 256, 256),
            r"x: expected 2-D \[tokens, model_dim\], got shape \[8, 256, 1\]",
        ),
        (
            meta(8, 256),
            meta(4, 256, 128),
            r"w1: expected last dim model_dim=256 \(x.shape\[1\]\), got shape \[4, 256, 128\]",
        ),
        (meta(8, 256), meta(4, 192, 256), "w1: inter=96 must be a multiple of tile_n=64"),
        (meta(8, 256).t(), meta(4, 256, 256), r"x: must be contiguous"),
    ],
)
def test_stage1_operand_errors(x, w1, message):
    with pytest.raises(ValueError, match=message):
        stage1(variant(), x, w1)


def test_split_k_needs_whole_tile_k_steps_per_slice():
    with pytest.raises(
        ValueError, match=r"model_dim=192 must be a multiple of tile_k \* k_batch = 64 \* 2"
    ):
        stage1(variant(k_batch=2), meta(8, 192), meta(4, 256, 192))


def test_topk_errors():
    with pytest.raises(ValueError, match=r"topk: expected an int in \[1, 256\), got 0"):
        stage1(variant(), meta(8, 256), meta(4, 256, 256), topk=0)


def test_routing_errors():
    ids, weights, experts, num_valid = routing_tensors(8, 2, 4)
    with pytest.raises(ValueError, match=r"sorted_expert_ids: expected >= 5 M-blocks"):
        stage1(variant(), meta(8, 256), meta(4, 256, 256), (ids, weights, experts[:4], num_valid))
    with pytest.raises(ValueError, match="sorted_weights: expected 80 elements .* got 79"):
        stage1(variant(), meta(8, 256), meta(4, 256, 256), (ids, weights[:79], experts, num_valid))
    with pytest.raises(ValueError, match="sorted_token_ids: expected dtype int32, got int64"):
        stage1(
            variant(), meta(8, 256), meta(4, 256, 256), (ids.long(), weights, experts, num_valid)
        )


def test_all_problems_reported_together():
    with pytest.raises(ValueError) as e:
        stage1(variant(), meta(8, 256, dtype=torch.float16), meta(4, 192, 256))
    assert "x: expected dtype" in str(e.value) and "inter=96" in str(e.value)


def test_stage2_errors():
    with pytest.raises(ValueError, match=r"a2: expected tokens \* topk rows \(topk=2\), got 15"):
        stage2(variant(stage=2), meta(15, 128), meta(4, 256, 128), topk=2)
    with pytest.raises(ValueError, match="w2: model_dim=96 must be a multiple of tile_n=64"):
        stage2(variant(stage=2), meta(16, 128), meta(4, 96, 128))
    with pytest.raises(ValueError, match="a2: inter=96 must be a multiple of tile_k=64"):
        stage2(variant(stage=2), meta(16, 96), meta(4, 256, 96))


def test_whole_tensor_weight_past_4_gib_rejected():
    # E=128, model_dim=6144, inter=1408: w1 is 4.12 GiB (meta: nothing allocated)
    x, w1 = meta(16, 6144), meta(128, 2 * 1408, 6144)
    with pytest.raises(ValueError, match=r"w1 .*4,429,185,024 bytes.*per_expert"):
        stage1(variant(addressing="whole_tensor", tile_n=128), x, w1, topk=4)
    assert stage1(variant(addressing="per_expert", tile_n=128), x, w1, topk=4).inter == 1408
    assert (
        stage1(
            variant(addressing="whole_tensor", tile_n=128), x, meta(128, 2 * 1280, 6144), topk=4
        ).inter
        == 1280
    )


def test_run_plan_order():
    calls = []
    plan = launch.LaunchPlan(
        pre=(launch.TorchStep("pre", lambda: calls.append("pre")),),
        kernels=(
            launch.KernelCall(
                lambda *a, **k: calls.append(("kernel", a, k)), (1, 2), {"n": 3}, "k"
            ),
        ),
        post=(launch.TorchStep("post", lambda: calls.append("post")),),
        result=torch.zeros(1),
    )
    assert launch.run_plan(plan) is plan.result
    assert calls == ["pre", ("kernel", (1, 2), {"n": 3}), "post"]


def test_reduce_split_k():
    tokens, topk, inter = 3, 2, 4
    g = torch.Generator().manual_seed(0)
    partial = torch.randn(tokens * topk, 2 * inter, generator=g)
    topk_ids = torch.tensor([[0, 1], [1, 2], [2, 0]], dtype=torch.int32)
    topk_weights = torch.rand(tokens, topk, generator=g)
    ids, weights, _, _ = routing.moe_sorting(topk_ids, topk_weights, 3, 16)
    out = torch.empty(tokens, topk, inter)
    launch.reduce_split_k(partial, out, (ids, weights))
    want = (
        torch.nn.functional.silu(partial[:, :inter])
        * partial[:, inter:]
        * topk_weights.reshape(-1, 1)
    )
    torch.testing.assert_close(out, want.view(tokens, topk, inter))
