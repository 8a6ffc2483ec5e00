"""moegen.runtime.reference against a naive per-token Python loop."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from moegen.runtime import reference


def naive_stage1(x, w1, topk_ids, topk_weights):
    tokens, topk = topk_ids.shape
    inter = w1.shape[1] // 2
    out = torch.zeros(tokens, topk, inter)
    for t in range(tokens):
        for s in range(topk):
            e = int(topk_ids[t, s])
            gate = x[t].float() @ w1[e, :inter].float().T
            up = x[t].float() @ w1[e, inter:].float().T
            out[t, s] = gate / (1 + torch.exp(-gate)) * up
            if topk_weights is not None:
                out[t, s] *= float(topk_weights[t, s])
    return out


def naive_stage2(a2, w2, topk_ids, topk_weights):
    tokens, topk = topk_ids.shape
    a2 = a2.reshape(tokens, topk, -1)
    out = torch.zeros(tokens, w2.shape[1])
    for t in range(tokens):
        for s in range(topk):
            out[t] += (a2[t, s].float() @ w2[int(topk_ids[t, s])].float().T) * float(
                topk_weights[t, s]
            )
    return out


def routed(g, tokens, topk, experts, unused):
    used = max(experts - unused, topk)  # the experts above `used` get no tokens
    topk_ids = torch.stack([torch.randperm(used, generator=g)[:topk] for _ in range(tokens)])
    return topk_ids, torch.rand(tokens, topk, generator=g)


@settings(max_examples=25, deadline=None)
@given(
    tokens=st.integers(1, 12),
    topk=st.integers(1, 3),
    experts=st.integers(3, 6),
    model_dim=st.sampled_from([8, 32]),
    inter=st.sampled_from([4, 16]),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
    unused=st.integers(0, 2),
)
def test_stage1_and_stage2_match_naive(
    tokens, topk, experts, model_dim, inter, weighted, seed, unused
):
    g = torch.Generator().manual_seed(seed)
    topk_ids, topk_weights = routed(g, tokens, topk, experts, unused)
    x = torch.randn(tokens, model_dim, generator=g).to(torch.bfloat16)
    w1 = torch.randn(experts, 2 * inter, model_dim, generator=g).to(torch.bfloat16)
    w2 = torch.randn(experts, model_dim, inter, generator=g).to(torch.bfloat16)
    weights = topk_weights if weighted else None
    h = reference.stage1(x, w1, topk_ids, weights)
    assert h.dtype == torch.float32
    torch.testing.assert_close(h, naive_stage1(x, w1, topk_ids, weights), rtol=1e-4, atol=1e-4)
    a2 = h.reshape(tokens * topk, inter)
    torch.testing.assert_close(
        reference.stage2(a2, w2, topk_ids, topk_weights),
        naive_stage2(a2, w2, topk_ids, topk_weights),
        rtol=1e-4,
        atol=1e-3,
    )


def test_moe_composes_the_stages():
    g = torch.Generator().manual_seed(3)
    topk_ids, topk_weights = routed(g, 7, 2, 5, 1)
    x, w1, w2 = (
        torch.randn(7, 16, generator=g),
        torch.randn(5, 8, 16, generator=g),
        torch.randn(5, 16, 4, generator=g),
    )
    want = naive_stage2(naive_stage1(x, w1, topk_ids, None), w2, topk_ids, topk_weights)
    torch.testing.assert_close(
        reference.moe(x, w1, w2, topk_ids, topk_weights), want, rtol=1e-4, atol=1e-3
    )


def test_cos_dist():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert abs(reference.cos_dist(a, 2 * a)) < 1e-12
    assert abs(reference.cos_dist(a, -a) - 2) < 1e-12
    assert abs(reference.cos_dist(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) - 1) < 1e-12


def test_reference_reads_only_the_routed_slabs():
    """A lazily filled weight (torch.empty) holds garbage outside the routed experts: NaN there
    must not reach the result, whose value equals the reference on the routed slabs alone."""
    g = torch.Generator().manual_seed(5)
    topk_ids, topk_weights = routed(g, 6, 2, 6, 3)  # experts 3..5 get no tokens
    x = torch.randn(6, 16, generator=g)
    w1 = torch.randn(6, 8, 16, generator=g)
    w2 = torch.randn(6, 16, 4, generator=g)
    clean1 = reference.stage1(x, w1, topk_ids)
    clean2 = reference.stage2(clean1, w2, topk_ids, topk_weights)
    w1[3:], w2[3:] = float("nan"), float("nan")
    h = reference.stage1(x, w1, topk_ids)
    assert torch.equal(h, clean1)
    assert torch.equal(reference.stage2(h, w2, topk_ids, topk_weights), clean2)
