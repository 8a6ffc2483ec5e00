"""The 1-byte dtypes' own 4 GiB line (fp8, int8 and int8smooth stage 1; fp8 and int8 stage 2),
past it with the guard bypassed: a whole_tensor kernel's 32-bit weight offsets wrap and its rows
come out wrong on the emulator (the generated boundary tests show the guard refusing there and
the per_expert twins exact across the line).

At model_dim 256, inter 512, 1-byte W1 is 2 * 512 * 256 = 256 KiB per expert and W2 256 * 512
= 128 KiB: 16448 experts span 4.016 GiB of W1, 32832 experts 4.008 GiB of W2, and tokens routed
to the highest experts read slabs past 2**32 bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.harness import boundary, execute
from moegen.runtime import launch

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
SHAPE = dict(model_dim=256, inter=512, tokens=16, topk=4, seed=0)
EXPERTS = {1: 16448, 2: 32832}  # per stage: just past 2**32 bytes of 1-byte weights
SLAB = {1: 2 * 512 * 256, 2: 256 * 512}  # bytes of one expert's 1-byte W1 / W2

# (stage, dtype): int8smooth declares stage 1 only (its stage 2 is int8's)
CASES = ((1, "fp8"), (1, "int8"), (1, "int8smooth"), (2, "fp8"), (2, "int8"))


def _case(name: str):
    module = execute.load_module(GENERATED / f"{name}.py")
    if module.VARIANT["act_bits"] != 8 or not module.VARIANT.get("scales"):
        pytest.skip(f"{name} is not a scaled 8-bit variant")
    experts = EXPERTS[module.VARIANT["stage"]]
    return execute.make_case(
        module, route="highest", lazy_weights=True, arch="gfx942", experts=experts, **SHAPE
    )


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"s{c[0]}_{c[1]}")
def case(request):
    stage, dtype = request.param
    return _case(f"moe_s{stage}_{dtype}_whole_tensor")


def test_guard_refuses_past_its_line(case):
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


def test_the_per_expert_twin_is_exact_on_the_same_case(case):
    """The same data through the 64-bit per-expert base passes every row: the failure above is
    the wrap, not the quantization or the tolerances."""
    twin = _case(case.module.VARIANT["name"].replace("_whole_tensor", "_per_expert"))
    act_scale = next(n for n in twin.scales if n.startswith(("x_", "a2_")))
    assert twin.act.equal(case.act) and twin.scales[act_scale].equal(case.scales[act_scale])
    for e in case.routed_experts:
        assert twin.weight[e].equal(case.weight[e])
    v = boundary.emulate_routed(twin, twin.plan())
    assert v.status == "ok", v.report()
