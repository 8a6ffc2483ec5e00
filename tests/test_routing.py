"""moegen.runtime.routing.moe_sorting against a naive per-row Python construction."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from moegen.runtime import routing


def naive_sorting(topk_ids, topk_weights, experts, block):
    tokens, topk = topk_ids.shape
    ids, weights, block_experts = [], [], []
    for e in range(experts):
        rows = [(t, s) for t in range(tokens) for s in range(topk) if int(topk_ids[t, s]) == e]
        if not rows:
            continue
        for t, s in rows:
            ids.append((s << 24) | t)
            weights.append(float(topk_weights[t, s]))
        while len(ids) % block:
            ids.append((topk << 24) | tokens)
            weights.append(0.0)
        block_experts += [e] * (len(ids) // block - len(block_experts))
    return ids, weights, block_experts


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.integers(1, 40),
    topk=st.integers(1, 4),
    experts=st.integers(4, 9),
    block=st.sampled_from([16, 32]),
    seed=st.integers(0, 2**16),
    unused=st.integers(0, 3),
)
def test_moe_sorting_matches_naive(tokens, topk, experts, block, seed, unused):
    g = torch.Generator().manual_seed(seed)
    used = max(experts - unused, topk)  # the experts above `used` get no tokens
    topk_ids = torch.stack([torch.randperm(used, generator=g)[:topk] for _ in range(tokens)]).to(
        torch.int32
    )
    topk_weights = torch.rand(tokens, topk, generator=g)
    ids, weights, block_experts, num_valid = routing.moe_sorting(
        topk_ids, topk_weights, experts, block
    )

    want_ids, want_weights, want_blocks = naive_sorting(topk_ids, topk_weights, experts, block)
    n = len(want_ids)
    assert int(num_valid[0]) == n
    assert ids[:n].tolist() == want_ids
    assert torch.allclose(weights[:n], torch.tensor(want_weights))
    assert block_experts[: n // block].tolist() == want_blocks
    # worst-case sizing, sentinel / zero fill past the valid rows
    assert ids.numel() == routing.num_m_blocks(tokens, topk, experts, block) * block
    assert ids.numel() >= routing.max_num_tokens_padded(tokens, topk, experts, block)
    assert (ids[n:] == ((topk << 24) | tokens)).all()
    assert (weights[n:] == 0).all()
    assert block_experts.numel() * block == ids.numel()
    assert set(block_experts[: n // block].tolist()) <= set(range(used))


def test_experts_without_tokens_get_no_blocks():
    topk_ids = torch.tensor([[3, 1], [1, 3]], dtype=torch.int32)
    ids, _, block_experts, num_valid = routing.moe_sorting(topk_ids, torch.ones(2, 2), 5, 16)
    assert int(num_valid[0]) == 32
    assert block_experts[:2].tolist() == [1, 3]
    # expert 1: (token 0, slot 1) then (token 1, slot 0); the rest of its block is padding
    assert ids[:2].tolist() == [(1 << 24) | 0, (0 << 24) | 1]
    assert ids[2:16].tolist() == [(2 << 24) | 2] * 14


def test_weights_by_row_inverts_the_sort():
    g = torch.Generator().manual_seed(1)
    topk_ids = torch.stack([torch.randperm(6, generator=g)[:3] for _ in range(11)]).to(torch.int32)
    topk_weights = torch.rand(11, 3, generator=g)
    ids, weights, _, _ = routing.moe_sorting(topk_ids, topk_weights, 6, 16)
    assert torch.equal(
        routing.weights_by_row(ids, weights, tokens=11, topk=3), topk_weights.flatten()
    )


def test_route_to_experts_uses_every_chosen_expert():
    topk_ids, topk_weights = routing.route_to_experts(5, 2, [127, 126, 125])
    assert set(topk_ids.flatten().tolist()) == {125, 126, 127}
    assert all(len(set(row)) == 2 for row in topk_ids.tolist())
    assert torch.allclose(topk_weights.sum(1), torch.ones(5))


def test_out_of_range_expert_rejected():
    with pytest.raises(ValueError, match=r"expert ids must lie in \[0, 4\)"):
        routing.moe_sorting(torch.tensor([[4]], dtype=torch.int32), torch.ones(1, 1), 4, 16)
