"""The runtime half of the generated boundary tests (generated/tests/test_<variant>.py).

The address model decides each variant's cases at render time (they are literals in the
generated test); this module runs one case:

- an addressable case runs the variant's kernels on an executor (real ROCm GPU or the CPU
  emulator) and returns cos_dist against an fp32 reference;
- an unaddressable case must be refused by the launcher's guard (a ValueError naming the
  tensor and the 32-bit limit) before anything is launched.

Production shapes are made affordable on a CPU the way real bugs are found: tokens are routed
to the highest experts (largest weight offsets), weights are `torch.empty` (virtual memory)
with only the rows the checked workgroups read filled in, and the emulator runs only those
workgroups: the first and last N-block, for the first and last M-block of the highest expert
and the first M-block of the lowest routed expert. Only their outputs are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

from . import execute, routing
from .address_model import TOKEN_COUNTS, BoundaryCase
from .reference import cos_dist

X_SCALE, W_SCALE = 0.1, 0.05  # the seed's data recipe
TOKEN_MASK, TOKEN_BITS = (1 << 24) - 1, 24
COS_DIST_LIMIT = 0.01


@dataclass(frozen=True)
class Covered:
    """What the checked workgroups compute: sorted rows (token, slot, expert, weight) and columns."""

    rows: list[tuple[int, int, int, float]]
    cols: torch.Tensor
    n_blocks: tuple[int, ...]
    m_blocks: tuple[int, ...]
    k_batch: int

    @property
    def only_wgs(self) -> list[tuple[int, int, int]]:
        """The checked workgroups (grid x = N-block, y = M-block, z = K slice)."""
        return [
            (x, y, z) for x in self.n_blocks for y in self.m_blocks for z in range(self.k_batch)
        ]


def cases(rows: list[tuple[str, int, int, int, str]], *, addressable: bool) -> list[BoundaryCase]:
    """BoundaryCases from the (label, inter, experts, topk, tokens label) rows a test lists."""
    return [
        BoundaryCase(label, inter, experts, topk, tokens, TOKEN_COUNTS[tokens], addressable)
        for label, inter, experts, topk, tokens in rows
    ]


def _dtypes(module: ModuleType, arch: str) -> tuple[torch.dtype, torch.dtype]:
    return getattr(torch, module.ACT_DTYPES[arch]), getattr(torch, module.WEIGHT_DTYPES[arch])


def _routing(case: BoundaryCase, tile_m: int, seed: int):
    experts = [case.experts - 1 - i for i in range(case.topk)]  # the highest experts
    topk_ids, topk_w = routing.route_to_experts(case.tokens, case.topk, experts, seed=seed)
    return topk_ids, topk_w, routing.moe_sorting(topk_ids, topk_w, case.experts, tile_m)


def _covered(v: dict, case: BoundaryCase, sorted_routing, n_total: int) -> Covered:
    ids, weights, expert_ids, num_valid = sorted_routing
    tile_m = v["tile_m"]
    valid_blocks = int(num_valid[0]) // tile_m
    eids = expert_ids[:valid_blocks].tolist()
    top, low = max(eids), min(eids)
    top_blocks = [b for b, e in enumerate(eids) if e == top]
    m_blocks = tuple(sorted({top_blocks[0], top_blocks[-1], eids.index(low)}))
    last_n = n_total // v["tile_n"] - 1
    n_blocks = tuple(sorted({0, last_n}))
    cols = torch.cat([torch.arange(b * v["tile_n"], (b + 1) * v["tile_n"]) for b in n_blocks])
    rows = []
    for b in m_blocks:
        for r in range(b * tile_m, (b + 1) * tile_m):
            packed = int(ids[r])
            token, slot = packed & TOKEN_MASK, packed >> TOKEN_BITS
            if token < case.tokens:
                rows.append((token, slot, eids[b], float(weights[r])))
    return Covered(rows, cols, n_blocks, m_blocks, v["k_batch"])


def _fill(t: torch.Tensor, index: tuple, gen: torch.Generator, scale: float) -> None:
    """t[index] = randn * scale, touching only those elements (index may be advanced)."""
    shape = torch.empty(t.shape, device="meta")[index].shape
    t[index] = (torch.randn(shape, generator=gen) * scale).to(t.device, t.dtype)


def _all_rows(sorted_routing, tokens: set[int]) -> list[tuple[int, int, int, float]]:
    """Every routed (token, slot, expert, weight) row of the given tokens, in any block."""
    ids, weights, expert_ids, num_valid = sorted_routing
    tile_m = ids.numel() // expert_ids.numel()
    out = []
    for r in range(int(num_valid[0])):
        packed = int(ids[r])
        token = packed & TOKEN_MASK
        if token in tokens:
            out.append(
                (token, packed >> TOKEN_BITS, int(expert_ids[r // tile_m]), float(weights[r]))
            )
    return out


def run_case(
    module: ModuleType,
    case: BoundaryCase,
    executor: str,
    *,
    model_dim: int,
    arch: str,
    seed: int = 0,
) -> float:
    """Run an addressable case on `executor`; returns cos_dist of the checked outputs.

    The emulator runs only the checked workgroups; a GPU runs the whole grid, so for stage 2
    (whose output rows sum every slot of a token) the reference then sums all of a checked
    token's slots, and the inputs every slot reads are filled."""
    v = module.VARIANT
    act, wdt = _dtypes(module, arch)
    device = "cuda" if executor == "rocm" else "cpu"
    gen = torch.Generator().manual_seed(seed)
    topk_ids, topk_w, sorted_routing = _routing(case, v["tile_m"], seed)
    E, D, inter, T, K = case.experts, model_dim, case.inter, case.tokens, case.topk
    routed = sorted(topk_ids.unique().tolist())
    cov = _covered(v, case, sorted_routing, inter if v["stage"] == 1 else D)
    checked_tokens = {t for t, _, _, _ in cov.rows}
    rows = cov.rows if executor == "emulator" else _all_rows(sorted_routing, checked_tokens)
    on_device = tuple(t.to(device) for t in sorted_routing)
    if v["stage"] == 1:
        w = torch.empty(E, 2 * inter, D, dtype=wdt, device=device)  # virtual until filled
        x = torch.empty(T, D, dtype=act, device=device)
        _fill(x, (torch.tensor(sorted({0} | checked_tokens)),), gen, X_SCALE)
        for e in routed:
            _fill(w, (e, cov.cols), gen, W_SCALE)
            _fill(w, (e, cov.cols + inter), gen, W_SCALE)
        plan = module.prepare(x, w, *on_device, topk=K)
        out = execute.run(plan, executor, arch=arch, only_wgs=cov.only_wgs).cpu()
        got = torch.stack([out[t, s, cov.cols].float() for t, s, _, _ in cov.rows])
        ref = []
        for t, s, e, rw in cov.rows:
            xf = x[t].float().cpu()
            gate = w[e, cov.cols].float().cpu() @ xf
            up = w[e, cov.cols + inter].float().cpu() @ xf
            h = torch.nn.functional.silu(gate) * up
            ref.append(h * rw if v["doweight"] else h)
        return cos_dist(got, torch.stack(ref))
    w = torch.empty(E, D, inter, dtype=wdt, device=device)
    a2 = torch.empty(T * K, inter, dtype=act, device=device)
    _fill(a2, (torch.tensor(sorted({0} | {t * K + s for t, s, _, _ in rows})),), gen, X_SCALE)
    for e in routed:
        _fill(w, (e, cov.cols), gen, W_SCALE)
    plan = module.prepare(a2, w, *on_device, topk=K)
    out = execute.run(plan, executor, arch=arch, only_wgs=cov.only_wgs).cpu()
    ref: dict[int, torch.Tensor] = {}
    for t, s, e, rw in rows:
        contrib = (w[e, cov.cols].float().cpu() @ a2[t * K + s].float().cpu()) * rw
        ref[t] = ref.get(t, 0) + contrib
    toks = sorted(ref)
    got = torch.stack([out[t, cov.cols].float() for t in toks])
    return cos_dist(got, torch.stack([ref[t] for t in toks]))


def guard_message(module: ModuleType, case: BoundaryCase, *, model_dim: int, arch: str) -> str:
    """Call the variant's entry point on meta tensors of the case's shape; return the guard's
    ValueError text. AssertionError if it did not refuse (it must, before any launch)."""
    v = module.VARIANT
    act, wdt = _dtypes(module, arch)
    _, _, sorted_routing = _routing(case, v["tile_m"], seed=0)
    E, D, inter, T, K = case.experts, model_dim, case.inter, case.tokens, case.topk
    if v["stage"] == 1:
        operands = (
            torch.empty(T, D, dtype=act, device="meta"),
            torch.empty(E, 2 * inter, D, dtype=wdt, device="meta"),
        )
        entry = module.moe_stage1
    else:
        operands = (
            torch.empty(T * K, inter, dtype=act, device="meta"),
            torch.empty(E, D, inter, dtype=wdt, device="meta"),
        )
        entry = module.moe_stage2
    try:
        entry(*operands, *sorted_routing, topk=K)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{v['name']} accepted {case.id}, which its 32-bit offsets cannot address")
