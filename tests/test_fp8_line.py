"""The 1-byte dtypes' own 4 GiB line (fp8, int8 and int8smooth stage 1), past it with the guard
bypassed: a whole_tensor kernel's 32-bit weight offsets wrap and its rows come out wrong on the
emulator (the generated boundary tests show the guard refusing there and the per_expert twins
exact across the line).

1-byte W1 at model_dim 256, inter 512 is 256 KiB per expert: 16448 experts span 4.016 GiB, and
tokens routed to the highest experts read slabs past 2**32 bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.harness import execute
from moegen.runtime import launch

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
PAST = dict(experts=16448, model_dim=256, inter=512, tokens=16, topk=4, seed=0)
SLAB = 2 * 512 * 256  # bytes of one expert's 1-byte W1


DTYPES = ("fp8", "int8", "int8smooth")


@pytest.fixture(scope="module", params=DTYPES)
def case(request):
    module = execute.load_module(GENERATED / f"moe_s1_{request.param}_whole_tensor.py")
    if module.VARIANT["act_bits"] != 8 or not module.VARIANT.get("scales"):
        pytest.skip(f"moe_s1_{request.param}_whole_tensor is not a scaled 8-bit variant")
    return execute.make_case(module, route="highest", lazy_weights=True, arch="gfx942", **PAST)


def test_guard_refuses_past_its_line(case):
    assert min(case.routed_experts) * SLAB >= 2**32  # every routed slab lies past the line
    with pytest.raises(ValueError, match=r"w1 \[16448, 1024, 256\] spans 4,311,744,512 bytes"):
        case.plan()


def test_bypassed_guard_is_wrong_past_the_line(case):
    """Only the routed M-blocks of N-block 0 run (the others hold padding or other columns)."""
    tile_m = case.module.VARIANT["tile_m"]
    wgs = [(0, y, 0) for y in range(int(case.sorted_routing[3][0]) // tile_m)]
    with launch.unsafe_skip_address_guards():
        plan = case.plan()
    run = execute.emulate(plan, arch=case.arch, only_wgs=wgs)
    v = case.judge(run.result, only_wgs=wgs, ambiguous=run.ambiguous_accesses)
    assert v.status == "WRONG", v.report()
    assert len(v.failed_rows) == len(v.rows) == PAST["tokens"] * case.topk


def test_the_per_expert_twin_is_exact_on_the_same_case(case):
    """The same data through the 64-bit per-expert base passes every row: the failure above is
    the wrap, not the quantization or the tolerances."""
    name = case.module.VARIANT["name"].replace("_whole_tensor", "_per_expert")
    module = execute.load_module(GENERATED / f"{name}.py")
    twin = execute.make_case(module, route="highest", lazy_weights=True, arch="gfx942", **PAST)
    assert twin.act.equal(case.act) and twin.scales["x_scale"].equal(case.scales["x_scale"])
    tile_m = module.VARIANT["tile_m"]
    wgs = [(0, y, 0) for y in range(int(twin.sorted_routing[3][0]) // tile_m)]
    run = execute.emulate(twin.plan(), arch=twin.arch, only_wgs=wgs)
    v = twin.judge(run.result, only_wgs=wgs, ambiguous=run.ambiguous_accesses)
    assert v.status == "ok", v.report()
