"""moegen.harness.verdict: per-row verdicts see a few bad rows, and values, not only directions.

Each planted error below is applied to a correct result (the fp32 reference itself, which any
correct kernel matches within rounding) of a small case built with the shared data recipe, and
the verdict must fail. None of these cases needs the emulator.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from moegen.harness import execute
from moegen.runtime import reference
from moegen.harness import verdict
from moegen.emulator import AmbiguousAccess

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
SMALL = dict(experts=8, model_dim=256, inter=128, tokens=16, topk=2)


def _problem(name: str, **over) -> execute.KernelCase:
    module = execute.load_module(GENERATED / f"{name}.py")
    return execute.make_case(module, **{**SMALL, **over})


def _stage1_ref(problem: execute.KernelCase, act) -> torch.Tensor:
    """A stage-1 reference with `act` in place of SiLU (a naive per-(token, slot) loop)."""
    x, w, ids = problem.act.float(), problem.weight.float(), problem.topk_ids
    inter = w.shape[1] // 2
    out = torch.zeros_like(problem.reference)
    for t in range(ids.shape[0]):
        for s in range(ids.shape[1]):
            h = w[int(ids[t, s])] @ x[t]
            out[t, s] = act(h[:inter]) * h[inter:]
    return out


# ---- the data recipe --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [256, 6144])
def test_recipe_gives_preactivations_of_a_few_units_at_any_k(k):
    """x ~ N(0, 1), w ~ N(0, (2.5 / sqrt(K))^2): x . w has std 2.5 whatever K is."""
    gen = torch.Generator().manual_seed(0)
    x = verdict.randn((512, k), gen, verdict.ACT_STD)
    w = verdict.randn((k, 64), gen, verdict.weight_std(k))
    std = float((x @ w).std())
    assert abs(std - 2.5) < 0.1, std
    assert verdict.weight_std(k) == pytest.approx(2.5 / math.sqrt(k))


def test_make_case_uses_the_recipe():
    p = _problem("moe_s1_bf16_per_expert", model_dim=1024, experts=4)
    gate = p.weight[:, : SMALL["inter"]].float() @ p.act.float().T  # [E, inter, tokens]
    assert abs(float(p.act.float().std()) - 1.0) < 0.05
    assert abs(float(gate.std()) - verdict.PREACT_STD) < 0.15


# ---- a correct result passes; planted errors fail ---------------------------------------------


@pytest.mark.parametrize(
    "name", ["moe_s1_bf16_per_expert", "moe_s1_fp16_whole_tensor_splitk2", "moe_s2_bf16_per_expert"]
)
def test_reference_rounded_once_to_bf16_passes(name):
    """A result rounded to bf16 (8 significant bits) errs by <= 2**-8 of each element: within
    rtol(bfloat16) = 2**-7 + 2**-12, whatever the stage."""
    p = _problem(name)
    v = p.judge(p.reference.to(torch.bfloat16))
    assert v.passed, v.report()
    assert v.status == "ok" and len(v.rows) == (32 if p.module.VARIANT["stage"] == 1 else 16)


def test_an_fp32_result_gets_no_16_bit_rounding_allowance():
    """Stage 2 stores fp32: bf16-sized errors (2**-8 of an element) are 16x rtol(float32)."""
    p = _problem("moe_s2_bf16_per_expert")
    v = p.judge(p.reference.to(torch.bfloat16).float())
    assert v.status == "WRONG" and v.rtol == 2 * 2.0**-24 + 2.0**-12


def test_gelu_for_silu_fails_on_values():
    """GELU(2.5) = 2.48 vs SiLU(2.5) = 2.31: several % of the row's peak, past rtol(bf16)."""
    p = _problem("moe_s1_bf16_per_expert")
    gelu_ref = _stage1_ref(p, torch.nn.functional.gelu)
    torch.testing.assert_close(
        _stage1_ref(p, torch.nn.functional.silu), p.reference, rtol=1e-5, atol=1e-5
    )
    v = p.judge(gelu_ref)
    assert v.status == "WRONG"
    assert len(v.failed_rows) > len(v.rows) // 2  # the activation is wrong everywhere
    assert all(r.max_abs_err > r.bound for r in v.failed_rows)


def test_doubled_stage2_output_fails_although_its_direction_is_right():
    p = _problem("moe_s2_bf16_whole_tensor")
    v = p.judge(2 * p.reference)
    assert v.global_cos_dist < 1e-12  # the seed's metric is blind to it
    assert v.status == "WRONG" and len(v.failed_rows) == len(v.rows) == SMALL["tokens"]
    assert all(r.cos_dist < verdict.ROW_COS_DIST_LIMIT for r in v.rows)  # values, not direction


def test_missing_routing_weight_fails():
    """Stage 2 without topk_weights: each slot's term is 1 / w >= 1 / (1 - w_other) too big."""
    p = _problem("moe_s2_fp16_per_expert")
    unweighted = reference.stage2(p.act, p.weight, p.topk_ids, torch.ones_like(p.topk_weights))
    v = p.judge(unweighted)
    assert v.status == "WRONG" and len(v.failed_rows) == SMALL["tokens"]


def test_missing_routing_weight_fails_in_a_weighting_stage1():
    """No shipped stage-1 variant weights its rows (doweight: false); one that did and dropped
    the weight (softmax over topk 2: each w <= 1 - the other) would be off by 1 / w >= x 1.2."""
    p = _problem("moe_s1_bf16_per_expert_splitk2")
    weighted = reference.stage1(p.act, p.weight, p.topk_ids, p.topk_weights)
    v = dataclasses.replace(p, reference=weighted).judge(p.reference)
    assert v.status == "WRONG" and len(v.failed_rows) == len(v.rows)


@pytest.mark.parametrize("scale", [1.02, 0.98])
def test_a_two_percent_scale_error_fails(scale):
    p = _problem("moe_s1_fp16_per_expert")
    v = p.judge(p.reference * scale)
    assert v.status == "WRONG" and len(v.failed_rows) == len(v.rows)


# ---- a few bad rows among many good ones ------------------------------------------------------


def test_one_zeroed_row_of_64_fails_while_the_global_figure_passes():
    """What a wrapped read looks like: the row of the expert past the line reads other bytes
    (here zeros). Its energy is ~1/64 of the total, so the global cos_dist is
    1 - sqrt(63/64) ~ 0.008 < 0.01, and only the per-row verdict sees it."""
    p = _problem("moe_s1_bf16_per_expert", experts=128, tokens=32, model_dim=128, inter=64)
    top = max(p.routed_experts)
    t, s = (p.topk_ids == top).nonzero()[0].tolist()
    got = p.reference.clone()
    got[t, s] = 0
    v = p.judge(got)
    assert v.global_cos_dist < verdict.GLOBAL_COS_DIST_LIMIT
    assert v.status == "WRONG"
    assert [(r.key.token, r.key.slot, r.key.experts) for r in v.failed_rows] == [(t, s, (top,))]
    slab = 2 * 64 * 128 * 2  # bytes of one bf16 w1 slab [2 * inter, model_dim]
    report = v.report()
    assert f"token {t} slot {s}: expert {top} slab @ {top * slab:#x}" in report
    assert f"1 of {len(v.rows)} rows fail" in report and len(v.rows) == 64


def test_report_names_expert_offsets_in_hex_and_gib():
    key = verdict.RowKey(3, 1, (127,))
    ref = torch.ones(1, 4)
    v = verdict.judge(
        torch.zeros(1, 4), ref, [key], out_dtype=torch.bfloat16, slab_bytes=2 * 3072 * 6144 * 2
    )
    # expert 127 of the production bf16 W1: 127 * 75,497,472 = 9,588,178,944 = 0x23b800000
    assert "token 3 slot 1: expert 127 slab @ 0x23b800000 (8.93 GiB)" in v.report()
    assert v.rows[0].cos_dist == 1.0  # an all-zero row against a non-zero one


def test_judge_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"must both be \[2 rows, n\]"):
        verdict.judge(
            torch.zeros(2, 3),
            torch.zeros(2, 4),
            [verdict.RowKey(0, 0, (0,))] * 2,
            out_dtype=torch.float32,
            slab_bytes=1,
        )


# ---- inconclusive -----------------------------------------------------------------------------


def _access(y: int) -> AmbiguousAccess:
    return AmbiguousAccess("rocdl.raw.ptr.buffer.load", "m.py:1", (0, y, 0), 5, 0x10, 0x1_0000_0010)


def test_an_ambiguous_access_of_a_checked_row_is_inconclusive_not_a_pass():
    p = _problem("moe_s2_bf16_per_expert")
    blocks = int(p.sorted_routing[3][0]) // p.module.VARIANT["tile_m"]
    v = p.judge(p.reference.clone(), ambiguous=[_access(blocks - 1)])
    assert v.status == "INCONCLUSIVE" and not v.passed
    assert "INCONCLUSIVE" in v.report() and "workgroup (0, %d, 0)" % (blocks - 1) in v.report()


def test_an_ambiguous_access_elsewhere_does_not_taint_the_checked_rows():
    """Stage 1 with only workgroup (0, 0, 0) run: an access of M block 1 touches no checked row."""
    p = _problem("moe_s1_bf16_per_expert")
    v = p.judge(p.reference.clone(), only_wgs=[(0, 0, 0)], ambiguous=[_access(1)])
    assert v.status == "ok", v.report()
    assert v.ambiguous == ()


# ---- the same verdicts on emulated kernel output ------------------------------------------------


@pytest.mark.parametrize("name", ["moe_s1_bf16_whole_tensor", "moe_s2_fp16_per_expert"])
def test_emulated_output_passes_and_the_planted_errors_fail(name):
    """The kernel's real output passes; the same output against a GELU reference (stage 1) or
    doubled / without routing weights (stage 2) fails."""
    p = _problem(name)
    out = execute.emulate(p.plan()).result
    assert p.judge(out).passed, p.judge(out).report()
    if p.module.VARIANT["stage"] == 1:
        planted = [dataclasses.replace(p, reference=_stage1_ref(p, torch.nn.functional.gelu))]
        results = [out]
    else:
        ones = torch.ones_like(p.topk_weights)
        unweighted = reference.stage2(p.act, p.weight, p.topk_ids, ones)
        planted = [p, dataclasses.replace(p, reference=unweighted)]
        results = [2 * out, out]
    for problem, result in zip(planted, results):
        assert problem.judge(result).status == "WRONG"
