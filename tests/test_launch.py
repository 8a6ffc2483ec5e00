"""moegen.runtime.launch: operand validation (meta tensors: nothing is allocated), plans, tile checks."""

import pytest
import torch

from moegen.runtime import launch
from moegen.runtime import routing

ACT = {"gfx942": "bfloat16", "gfx950": "bfloat16"}


def variant(stage=1, addressing="per_expert", split_k=1, **over):
    v = dict(
        name=f"moe_s{stage}_bf16_{addressing}",
        stage=stage,
        dtype="bf16",
        addressing=addressing,
        split_k=split_k,
        tile_m=16,
        tile_n=64,
        tile_k=64,
        doweight=False,
        out_dtype="bfloat16" if stage == 1 else "float32",
        archs=["gfx942", "gfx950"],
        act_bits=16,
        weight_bits=16,
        weight_pack=1,
        out_bits=16 if stage == 1 else 32,  # stage 1 stores in the activation dtype
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
        ValueError, match=r"model_dim=192 must be a multiple of tile_k \* split_k = 64 \* 2"
    ):
        stage1(variant(split_k=2), meta(8, 192), meta(4, 256, 192))


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


def problems(call) -> list[str]:
    """The problem lines of the ValueError `call()` raises (it must raise)."""
    with pytest.raises(ValueError) as e:
        call()
    head, *lines = str(e.value).split("\n  - ")
    assert head.endswith(": invalid operands:"), head
    return lines


# One test per launcher check: each input breaks exactly that check (so the problem list has one
# entry, the check's) and the message names what, the value, and the fix.


def test_tokens_past_the_24_bit_field_refused():
    # sorted_token_ids keeps the token in bits 0..23: 2**24 tokens cannot be encoded, 2**24 - 1 can.
    # model_dim 64, inter 64, topk 1 keep every tensor under 4 GiB: x = 2**24 * 64 * 2 B = 2 GiB,
    # so the 32-bit offset guards stay silent and only the token check speaks.
    w1 = meta(1, 128, 64)
    ok = stage1(variant(), meta(2**24 - 1, 64), w1, topk=1)
    assert ok.tokens == 2**24 - 1
    assert problems(lambda: stage1(variant(), meta(2**24, 64), w1, topk=1)) == [
        "x: tokens=16777216 must be in [1, 16777216) (24-bit token field of sorted_token_ids); "
        "split the batch into smaller chunks"
    ]


def test_operands_on_two_devices_refused():
    x_on_cpu = torch.empty(8, 256, dtype=torch.bfloat16)  # 4 KiB; everything else on meta
    assert problems(lambda: stage1(variant(), x_on_cpu, meta(4, 256, 256))) == [
        "all operands must be on one device, got x: cpu, w1: meta, sorted_token_ids: meta, "
        "sorted_weights: meta, sorted_expert_ids: meta, num_valid_ids: meta; "
        "move them to one device with .to(device)"
    ]


def test_short_sorted_token_ids_refused():
    # 8 tokens x topk 2 over 4 experts, tile_m 16: padded rows = 8*2 + 4*16 - 2 = 78, so
    # ceil(78 / 16) = 5 M-blocks and 5 * 16 = 80 sorted_token_ids entries are needed.
    # sorted_weights is shortened with it, so only the row count of sorted_token_ids is wrong.
    ids, weights, experts, num_valid = routing_tensors(8, 2, 4)
    assert ids.numel() == 80 and experts.numel() == 5
    short = (ids[:79], weights[:79], experts, num_valid)
    assert problems(lambda: stage1(variant(), meta(8, 256), meta(4, 256, 256), short)) == [
        "sorted_token_ids: expected >= 80 entries (5 M-blocks x tile_m=16), got 79; "
        "use moegen.runtime.routing.moe_sorting"
    ]


def test_w2_inner_dim_must_equal_a2_inter():
    # a2 [16, 128] says inter = 128; w2 [4, 256, 64] holds 64 per row (64 is itself tile_k-aligned).
    assert problems(lambda: stage2(variant(stage=2), meta(16, 128), meta(4, 256, 64))) == [
        "w2: expected last dim inter=128 (a2.shape[1]), got shape [4, 256, 64]; "
        "w2 is [experts, model_dim, inter]"
    ]


def test_w1_odd_gate_up_rows_refused():
    # 257 rows = gate + up cannot split in two; inter = 257 // 2 = 128 is tile_n-aligned, so the
    # parity check is the only one that fires.
    assert problems(lambda: stage1(variant(), meta(8, 256), meta(4, 257, 256))) == [
        "w1: dim 1 holds gate and up rows, so it must be even, got 257; "
        "w1 is [experts, 2 * inter, model_dim], gate rows then up rows"
    ]


def test_empty_num_valid_ids_refused():
    ids, weights, experts, _ = routing_tensors(8, 2, 4)
    empty = meta(0, dtype=torch.int32)
    assert problems(
        lambda: stage1(variant(), meta(8, 256), meta(4, 256, 256), (ids, weights, experts, empty))
    ) == [
        "num_valid_ids: expected at least 1 element (the number of padded sorted rows), got 0; "
        "pass the num_valid_ids that moegen.runtime.routing.moe_sorting returns"
    ]


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
