"""Packed int4's own 4 GiB line, past it with the guard bypassed, for both int4 dtypes (int4_bf16,
W4A16: packed_16x16 with per-group scales; int4, W4A8: split_nibbles with per-channel scales):
a whole_tensor kernel's 32-bit weight offsets wrap and its rows come out wrong on the emulator
(the generated boundary tests show the guard refusing there and the per_expert twins exact
across the line).

Packed int4 W1 at model_dim 256, inter 512 is 2 * 512 * 256 / 2 = 128 KiB per expert: 32832
experts span 4.008 GiB (2**32 bytes is 32768 slabs), and tokens routed to the four highest
experts read slabs past 2**32 bytes. The scales stay below the line (per-group [E, 1024, 8]
bf16: 512 MiB; per-channel [E, 1024] fp32: 128 MiB): only the weight wraps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.harness import execute
from moegen.runtime import launch

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
PAST = dict(experts=32832, model_dim=256, inter=512, tokens=16, topk=4, seed=0)
SLAB = 2 * 512 * 256 // 2  # bytes of one expert's packed W1


def _case(name: str):
    module = execute.load_module(GENERATED / f"{name}.py")
    if module.VARIANT.get("weight_pack", 1) != 2:
        pytest.skip(f"{name} is not a packed int4 variant")
    return execute.make_case(module, route="highest", lazy_weights=True, arch="gfx942", **PAST)


# (whole_tensor variant, its per_expert twin): W4A16, and W4A8 at its decode tile (K 256)
PAIRS = {
    "w4a16": ("moe_s1_int4_bf16_whole_tensor", "moe_s1_int4_bf16_per_expert"),
    "w4a8": ("moe_s1_int4_whole_tensor_t32x64x256", "moe_s1_int4_per_expert_t32x64x256"),
}


@pytest.fixture(scope="module", params=sorted(PAIRS))
def pair(request):
    return PAIRS[request.param]


@pytest.fixture(scope="module")
def case(pair):
    return _case(pair[0])


def _emulate(c, plan):
    """Only the routed M-blocks of N-block 0 run (the others hold padding or other columns)."""
    tile_m = c.module.VARIANT["tile_m"]
    wgs = [(0, y, 0) for y in range(int(c.sorted_routing[3][0]) // tile_m)]
    run = execute.emulate(plan, arch=c.arch, only_wgs=wgs)
    return c.judge(run.result, only_wgs=wgs, ambiguous=run.ambiguous_accesses)


def test_guard_refuses_int4_past_its_line(case):
    assert min(case.routed_experts) * SLAB >= 2**32  # every routed slab lies past the line
    with pytest.raises(ValueError, match=r"w1 \[32832, 1024, 256\] spans 4,303,355,904 bytes"):
        case.plan()


def test_bypassed_guard_is_wrong_past_the_line(case):
    with launch.unsafe_skip_address_guards():
        plan = case.plan()
    v = _emulate(case, plan)
    assert v.status == "WRONG", v.report()
    assert len(v.failed_rows) == len(v.rows) == case.act.shape[0] * case.topk


def test_the_per_expert_twin_is_exact_on_the_same_case(case, pair):
    """The same data through the 64-bit per-expert base (weights and scales) passes every row:
    the failure above is the wrap, not the quantization or the tolerances."""
    twin = _case(pair[1])
    assert twin.act.equal(case.act)
    for e in case.routed_experts:
        assert twin.weight[e].equal(case.weight[e]) and twin.scales["w1_scale"][e].equal(
            case.scales["w1_scale"][e]
        )
    v = _emulate(twin, twin.plan())
    assert v.status == "ok", v.report()
