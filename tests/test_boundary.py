"""The boundary harness: which workgroups and outputs a production-size case checks."""

from __future__ import annotations

import pytest

from moegen.harness import boundary
from moegen.core.sweep import TOKEN_COUNTS

VARIANT = {"tile_m": 16, "tile_n": 64, "split_k": 2}


def test_cases_rows_become_boundary_cases():
    (c,) = boundary.cases([("above", 1408, 128, 4, "prefill")], addressable=False)
    assert (c.label, c.inter, c.experts, c.topk, c.tokens) == ("above", 1408, 128, 4, 2048)
    assert c.id == "inter=1408-prefill" and not c.addressable
    (own,) = boundary.cases([("own_below", 174720, 2, 2, "decode")], addressable=True)
    assert own.id == "inter=174720-E=2-decode" and own.tokens == TOKEN_COUNTS["decode"]


@pytest.mark.parametrize("tokens_label", ["decode", "prefill"])
def test_checked_workgroups_sit_at_the_largest_offsets(tokens_label):
    (case,) = boundary.cases([("production", 3072, 128, 4, tokens_label)], addressable=True)
    _, _, sorted_routing = boundary._routing(case, VARIANT["tile_m"], seed=0)
    cov = boundary._covered(VARIANT, case, sorted_routing, n_total=3072)
    expert_ids = sorted_routing[2].tolist()
    # the first and last M-block of the highest expert, and the lowest routed expert's first
    assert {expert_ids[b] for b in cov.m_blocks} == {124, 127}
    assert max(cov.m_blocks) == max(b for b, e in enumerate(expert_ids) if e == 127)
    assert cov.n_blocks == (0, 3072 // 64 - 1)
    assert len(cov.only_wgs) == len(cov.m_blocks) * 2 * VARIANT["split_k"]
    assert {z for _, _, z in cov.only_wgs} == {0, 1}
    # every checked row is a real (token, slot) of those blocks, with its routing weight
    assert cov.rows and all(0 <= t < case.tokens and 0 <= s < 4 for t, s, _, _ in cov.rows)
    assert all(e in (124, 127) and 0 < w < 1 for _, _, e, w in cov.rows)
    assert cov.cols.tolist() == list(range(64)) + list(range(3008, 3072))


def test_a_gpu_run_checks_every_slot_of_the_checked_tokens():
    """A GPU runs the whole grid: a stage-2 output row sums all topk slots of its token."""
    (case,) = boundary.cases([("production", 3072, 128, 4, "prefill")], addressable=True)
    _, _, sorted_routing = boundary._routing(case, VARIANT["tile_m"], seed=0)
    cov = boundary._covered(VARIANT, case, sorted_routing, n_total=6144)
    tokens = {t for t, _, _, _ in cov.rows}
    rows = boundary._all_rows(sorted_routing, tokens)
    assert len(rows) == 4 * len(tokens) > len(cov.rows)
    assert {(t, s) for t, s, _, _ in rows} == {(t, s) for t in tokens for s in range(4)}
    assert set(cov.rows) <= set(rows)


def test_guard_message_meets_only_the_guard():
    """guard_message puts every operand, routing included, on the meta device: the refusal
    holds the guard's one problem, not also a stray "all operands must be on one device"
    (which would refuse any shape, so a test of the guard could pass without it)."""
    from generated.flydsl import moe_s1_bf16_whole_tensor as kernel

    (case,) = boundary.cases([("above", 1408, 128, 4, "prefill")], addressable=False)
    message = boundary.guard_message(kernel, case, model_dim=6144, arch="gfx942")
    assert message.count("\n  - ") == 1, message
    assert "w1 [128, 2816, 6144] spans" in message and "one device" not in message


def test_only_prefill_own_line_cases_are_slow():
    """BoundaryCase.slow: an own-line case at the prefill count, and nothing else."""
    from moegen.core.sweep import BoundaryCase

    own_prefill = BoundaryCase("own_below", 349504, 2, 2, "prefill", 2048, True)
    assert own_prefill.slow
    assert not BoundaryCase("own_below", 349440, 2, 2, "decode", 16, True).slow
    assert not BoundaryCase("below", 1344, 128, 4, "prefill", 2048, True).slow
