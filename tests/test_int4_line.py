"""Packed int4's own 4 GiB line, past it with the guard bypassed, for both int4 dtypes (int4_bf16,
W4A16: packed_16x16 with per-group scales; int4, W4A8: split_nibbles with per-channel scales):
a whole_tensor kernel's 32-bit weight offsets wrap and its rows come out wrong on the emulator
(the generated boundary tests show the guard refusing there and the per_expert twins exact
across the line).

At model_dim 256, inter 512, packed int4 W1 is 2 * 512 * 256 / 2 = 128 KiB per expert and W2
256 * 512 / 2 = 64 KiB: 32832 experts span 4.008 GiB of W1, 65600 experts 4.004 GiB of W2
(2**32 bytes is 32768 / 65536 slabs), and tokens routed to the four highest experts read slabs
past 2**32 bytes. The scales stay below the line (per-group W1 [E, 1024, 8] bf16: 512 MiB;
per-channel W1 [E, 1024] and W2 [E, 256] fp32: 128 / 64 MiB): only the weight wraps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.harness import boundary, execute
from moegen.runtime import launch

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
SHAPE = dict(model_dim=256, inter=512, tokens=16, topk=4, seed=0)
EXPERTS = {1: 32832, 2: 65600}  # per stage: just past 2**32 bytes of packed weights
SLAB = {1: 2 * 512 * 256 // 2, 2: 256 * 512 // 2}  # bytes of one expert's packed W1 / W2


def _case(name: str):
    module = execute.load_module(GENERATED / f"{name}.py")
    if module.VARIANT.get("weight_pack", 1) != 2:
        pytest.skip(f"{name} is not a packed int4 variant")
    experts = EXPERTS[module.VARIANT["stage"]]
    return execute.make_case(
        module, route="highest", lazy_weights=True, arch="gfx942", experts=experts, **SHAPE
    )


# (whole_tensor variant, its per_expert twin): W4A16 stage 1, and W4A8 stage 1 at its decode
# tile (K 256) and stage 2
PAIRS = {
    "w4a16": ("moe_s1_int4_bf16_whole_tensor", "moe_s1_int4_bf16_per_expert"),
    "w4a8": ("moe_s1_int4_whole_tensor_t32x64x256", "moe_s1_int4_per_expert_t32x64x256"),
    "w4a8_s2": ("moe_s2_int4_whole_tensor", "moe_s2_int4_per_expert"),
}


@pytest.fixture(scope="module", params=sorted(PAIRS))
def pair(request):
    return PAIRS[request.param]


@pytest.fixture(scope="module")
def case(pair):
    return _case(pair[0])


def test_guard_refuses_int4_past_its_line(case):
    stage = case.module.VARIANT["stage"]
    assert min(case.routed_experts) * SLAB[stage] >= 2**32  # every routed slab lies past the line
    span = EXPERTS[stage] * SLAB[stage]
    with pytest.raises(
        ValueError, match=rf"w{stage} \[{EXPERTS[stage]}, \d+, \d+\] spans {span:,} bytes"
    ):
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
    for e in case.routed_experts:
        scale = f"w{case.module.VARIANT['stage']}_scale"
        assert twin.weight[e].equal(case.weight[e]) and twin.scales[scale][e].equal(
            case.scales[scale][e]
        )
    v = boundary.emulate_routed(twin, twin.plan())
    assert v.status == "ok", v.report()
