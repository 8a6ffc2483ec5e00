"""torch moe_sorting: top-k routing -> the sorted-row format the MoE kernels read.

Format (compatible with upstream moe_sorting):
  sorted_token_ids[i]  = (slot << 24) | token for each routed (token, topk slot), grouped by
                         expert (ascending), each expert's rows padded to a multiple of the
                         block size with the sentinel (topk << 24) | tokens;
  sorted_weights[i]    = the routing weight of row i (float32, 0 in padding);
  sorted_expert_ids[b] = the expert of M-block b (rows [b * block, (b + 1) * block));
  num_valid_ids[0]     = the number of padded rows actually used.
Experts with no tokens get no blocks. The buffers are sized for the worst case,
max_num_tokens_padded = tokens * topk + E * block - topk rows, rounded up to whole blocks;
entries past num_valid_ids[0] are sentinels (ids) / 0 (weights, expert ids).
"""

from __future__ import annotations

import torch

from moegen.core.vocabulary import TOKEN_BITS


def max_num_tokens_padded(tokens: int, topk: int, experts: int, block: int) -> int:
    """Worst-case padded row count: every expert but the fullest wastes up to block - 1 rows."""
    return tokens * topk + experts * block - topk


def num_m_blocks(tokens: int, topk: int, experts: int, block: int) -> int:
    """M-blocks the routing buffers (and the kernels' grids) must cover."""
    return -(-max_num_tokens_padded(tokens, topk, experts, block) // block)


def moe_sorting(
    topk_ids: torch.Tensor, topk_weights: torch.Tensor, experts: int, block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort routed (token, slot) rows by expert; returns (sorted_token_ids, sorted_weights,
    sorted_expert_ids, num_valid_ids) on topk_ids' device.

    topk_ids [tokens, topk] int (expert per slot, each in [0, experts)); topk_weights
    [tokens, topk] float; block = the kernels' tile_m.
    """
    tokens, topk = topk_ids.shape
    if topk_ids.numel() and not 0 <= int(topk_ids.min()) <= int(topk_ids.max()) < experts:
        raise ValueError(
            f"topk_ids: expert ids must lie in [0, {experts}), got [{int(topk_ids.min())}, {int(topk_ids.max())}]"
        )
    blocks = num_m_blocks(tokens, topk, experts, block)
    sentinel = (topk << TOKEN_BITS) | tokens
    ids = torch.full((blocks * block,), sentinel, dtype=torch.int32)
    weights = torch.zeros(blocks * block, dtype=torch.float32)
    expert_of_block = torch.zeros(blocks, dtype=torch.int32)

    flat_experts = topk_ids.reshape(-1).long().cpu()
    token = torch.arange(tokens).repeat_interleave(topk)
    slot = torch.arange(topk).repeat(tokens)
    packed = ((slot << TOKEN_BITS) | token).to(torch.int32)
    flat_weights = topk_weights.reshape(-1).float().cpu()

    row = 0
    for e in range(experts):
        mine = (flat_experts == e).nonzero().flatten()  # ascending (token, slot) order
        if mine.numel() == 0:
            continue
        ids[row : row + mine.numel()] = packed[mine]
        weights[row : row + mine.numel()] = flat_weights[mine]
        padded = -(-mine.numel() // block) * block
        expert_of_block[row // block : (row + padded) // block] = e
        row += padded
    device = topk_ids.device
    return (
        ids.to(device),
        weights.to(device),
        expert_of_block.to(device),
        torch.tensor([row], dtype=torch.int32, device=device),
    )


def weights_by_row(
    sorted_token_ids: torch.Tensor, sorted_weights: torch.Tensor, *, tokens: int, topk: int
) -> torch.Tensor:
    """Invert the sort: the routing weight of row t * topk + s, float32 [tokens * topk]."""
    token = sorted_token_ids & ((1 << TOKEN_BITS) - 1)
    routed = token < tokens
    rows = token[routed].long() * topk + (sorted_token_ids[routed] >> TOKEN_BITS).long()
    out = torch.zeros(tokens * topk, dtype=torch.float32, device=sorted_weights.device)
    out[rows] = sorted_weights[routed]
    return out


def route_to_experts(
    tokens: int, topk: int, experts: list[int], *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (topk_ids, topk_weights) that send every token to the chosen experts.

    Token t's slots take topk distinct experts from the list, rotated by t, so every listed
    expert gets rows (e.g. experts=[E-1, E-2, ...] to exercise the highest weight offsets).
    Weights are positive and sum to 1 per token.
    """
    if len(set(experts)) < topk:
        raise ValueError(f"need at least topk={topk} distinct experts, got {experts}")
    chosen = [experts[(t + s) % len(experts)] for t in range(tokens) for s in range(topk)]
    topk_ids = torch.tensor(chosen, dtype=torch.int32).view(tokens, topk)
    g = torch.Generator().manual_seed(seed)
    topk_weights = torch.softmax(torch.randn(tokens, topk, generator=g), dim=1)
    return topk_ids, topk_weights
