"""int8smooth's expanded activations in the 2-4 GiB band, on the emulator.

x [topk * tokens, K] is read through ONE buffer resource with 32-bit offsets (the launch guard
refuses it at 4 GiB: tests/test_guards.py test_expanded_activations_line). Between 2 and 4 GiB
the byte offset of a row no longer fits a signed i32, the band where signed 32-bit math breaks
first. The issue's shape, 64k tokens x topk 8 x K 7168 (3.5 GiB), runs here: x is allocated
lazily (torch.empty) and only the rows of the emulated M-block are written; that block's rows
reach from below 2**31 to the top of the tensor. Every row must match the fp32 reference on
dequantized values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moegen.core.vocabulary import TOKEN_BITS, TOKEN_MASK
from moegen.harness import execute, scaled, verdict
from moegen.runtime import reference, routing

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
E, D, INTER, T, K = 8, 7168, 64, 65536, 8  # x: 524288 x 7168 int8 = 3.5 GiB


@pytest.fixture(scope="module")
def module():
    path = GENERATED / "moe_s1_int8smooth_per_expert.py"
    if not path.exists():
        pytest.skip("variants.yaml declares no int8smooth stage-1 variant")
    m = execute.load_module(path)
    if m.VARIANT.get("act_rows") != "expanded":
        pytest.skip("moe_s1_int8smooth_per_expert does not read expanded rows")
    return m


def test_expanded_rows_in_the_2_to_4_gib_band_are_exact(module):
    v, arch = module.VARIANT, "gfx942"
    gen = torch.Generator().manual_seed(0)
    topk_ids, topk_w = routing.route_to_experts(T, K, list(range(E)), seed=0)
    ids, weights, expert_ids, num_valid = routing.moe_sorting(topk_ids, topk_w, E, v["tile_m"])
    tile_m = v["tile_m"]

    def rows_of(block: int) -> list[tuple[int, int]]:
        packed = ids[block * tile_m : (block + 1) * tile_m].tolist()
        return [(p & TOKEN_MASK, p >> TOKEN_BITS) for p in packed if (p & TOKEN_MASK) < T]

    # the routed M-block whose rows reach furthest into x (row slot * T + token)
    blocks = int(num_valid[0]) // tile_m
    y = max(range(blocks), key=lambda b: max((s * T + t for t, s in rows_of(b)), default=-1))
    checked = rows_of(y)
    offsets = [(s * T + t) * D for t, s in checked]
    assert min(offsets) < 2**31 <= max(offsets) < 2**32  # both sides of the signed line
    x = torch.empty(K * T, D, dtype=torch.int8)  # 3.5 GiB, virtual until written
    assert x.numel() == 3.5 * 2**30
    w = torch.empty(E, 2 * INTER, D, dtype=torch.int8)
    sc = scaled.Scales(v, x, w)
    x_rows = torch.tensor(sorted({0} | {s * T + t for t, s in checked}))
    scaled.fill(x, sc.act, (x_rows,), verdict.randn((len(x_rows), D), gen, verdict.ACT_STD))
    stored = torch.empty_like(w)
    for e in range(E):
        scaled.fill(w, sc.weight, (e,), verdict.randn((2 * INTER, D), gen, verdict.weight_std(D)))
        execute.store_weight(v, stored, w, e, range(2 * INTER))
    plan = module.prepare(x, stored, ids, weights, expert_ids, num_valid, topk=K, **sc.kwargs())
    run = execute.emulate(plan, arch=arch, only_wgs=[(0, y, 0)])
    e = int(expert_ids[y])
    wf = scaled.dequantized(w[e], sc.weight[e])
    got, ref, keys = [], [], []
    for t, s in checked:
        r = s * T + t
        h = wf @ scaled.dequantized(x[r], sc.act[r])
        ref.append(reference.gated(h[:INTER], h[INTER:]))
        got.append(run.result[t, s].float())
        keys.append(verdict.RowKey(t, s, (e,)))
    result = verdict.judge(
        torch.stack(got),
        torch.stack(ref),
        keys,
        out_dtype=run.result.dtype,
        slab_bytes=verdict.slab_bytes(w),
        ambiguous=run.ambiguous_accesses,
        accumulation=verdict.accumulation_rtol(v),
    )
    assert result.status == "ok", result.report()
