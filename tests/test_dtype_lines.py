"""The scaled dtypes' own 4 GiB lines, past them with the guard bypassed: a whole_tensor kernel's
32-bit weight offsets wrap and its rows come out wrong on the emulator, while its per_expert
twin is exact on the same data (the generated boundary tests show the guard refusing there and
the per_expert twins exact across the line at the production model_dim).

Covered: the 1-byte dtypes (fp8, int8 and int8smooth stage 1; fp8 and int8 stage 2) and packed
int4 (int4_bf16, W4A16: packed_16x16 with per-group scales, stage 1; int4, W4A8: split_nibbles
with per-channel scales, both stages). Each case is model_dim 256, inter 512, 16 tokens routed
to the topk 4 highest experts, with 64 experts more than fit below 2**32 bytes of weights
(1-byte W1 is 256 KiB per expert and W2 128 KiB; int4's are half that: 16448 / 32832 experts of
1-byte W1 / W2, 32832 / 65600 of int4's), so every routed slab lies past the line. The scales
stay below it (at most [E, 1024, 8] bf16 per-group scales: 512 MiB): only the weight wraps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.harness import boundary, execute
from moegen.runtime import launch

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
SHAPE = dict(model_dim=256, inter=512, tokens=16, topk=4, seed=0)

# (whole_tensor variant, its per_expert twin). int8smooth declares stage 1 only (its stage 2 is
# int8's); W4A8's stage-1 decode tile is K 256.
PAIRS = {
    "s1_fp8": ("moe_s1_fp8_whole_tensor", "moe_s1_fp8_per_expert"),
    "s1_int8": ("moe_s1_int8_whole_tensor", "moe_s1_int8_per_expert"),
    "s1_int8smooth": ("moe_s1_int8smooth_whole_tensor", "moe_s1_int8smooth_per_expert"),
    "s2_fp8": ("moe_s2_fp8_whole_tensor", "moe_s2_fp8_per_expert"),
    "s2_int8": ("moe_s2_int8_whole_tensor", "moe_s2_int8_per_expert"),
    "s1_w4a16": ("moe_s1_int4_bf16_whole_tensor", "moe_s1_int4_bf16_per_expert"),
    "s1_w4a8": ("moe_s1_int4_whole_tensor_t32x64x256", "moe_s1_int4_per_expert_t32x64x256"),
    "s2_w4a8": ("moe_s2_int4_whole_tensor", "moe_s2_int4_per_expert"),
}


def _slab(variant: dict) -> int:
    """Bytes of one expert's stored weight at SHAPE: W1 [2 * inter, model_dim], W2 [model_dim,
    inter], weight_bits each."""
    return (
        2
        * SHAPE["inter"]
        * SHAPE["model_dim"]
        * variant["weight_bits"]
        // 8
        // (2 if variant["stage"] == 2 else 1)
    )


def _experts(variant: dict) -> int:
    return 2**32 // _slab(variant) + 64  # just past the line: the top 64 slabs lie beyond it


def _case(name: str):
    module = execute.load_module(GENERATED / f"{name}.py")
    v = module.VARIANT
    assert v["scales"], f"{name} is not a scaled dtype's variant"
    return execute.make_case(
        module, route="highest", lazy_weights=True, arch="gfx942", experts=_experts(v), **SHAPE
    )


@pytest.fixture(scope="module", params=sorted(PAIRS))
def pair(request):
    return PAIRS[request.param]


@pytest.fixture(scope="module")
def case(pair):
    return _case(pair[0])


def test_guard_refuses_past_its_line(case):
    v = case.module.VARIANT
    assert min(case.routed_experts) * _slab(v) >= 2**32  # every routed slab lies past the line
    experts, stage = _experts(v), v["stage"]
    span = experts * _slab(v)
    with pytest.raises(ValueError, match=rf"w{stage} \[{experts}, \d+, \d+\] spans {span:,} bytes"):
        case.plan()


def test_bypassed_guard_is_wrong_past_the_line(case):
    with launch.unsafe_skip_address_guards():
        plan = case.plan()
    v = boundary.emulate_routed(case, plan)
    assert v.status == "WRONG", v.report()
    # every output row: stage 1's per (token, slot), stage 2's per token (its slots summed)
    rows = SHAPE["tokens"] * (case.topk if case.module.VARIANT["stage"] == 1 else 1)
    assert len(v.failed_rows) == len(v.rows) == rows


def test_the_per_expert_twin_is_exact_on_the_same_case(case, pair):
    """The same data through the 64-bit per-expert base (weights and scales) passes every row:
    the failure above is the wrap, not the quantization or the tolerances."""
    twin = _case(pair[1])
    assert twin.act.equal(case.act)
    for name, scale in case.scales.items():
        if name.startswith(("x_", "a2_")):  # the activation's scale, whole
            assert twin.scales[name].equal(scale), name
    for e in case.routed_experts:
        assert twin.weight[e].equal(case.weight[e])
        for name, scale in case.scales.items():
            if name.startswith("w"):  # the weight's scale, per routed expert
                assert twin.scales[name][e].equal(scale[e]), name
    v = boundary.emulate_routed(twin, twin.plan())
    assert v.status == "ok", v.report()
