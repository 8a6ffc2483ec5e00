"""The runtime half of the Triton variants' generated boundary tests.

One executor per process: a GPU (CUDA or ROCm torch) when one is present, else Triton's CPU
interpreter (TRITON_INTERPRET=1, which must be set before a kernel module is imported:
`use_interpreter_without_gpu` does it). An addressable case runs the variant's plan and returns
moegen.harness.verdict's per-row verdict against an fp32 reference, on its data recipe; an
unaddressable one must be refused by the launcher before anything launches
(moegen.harness.boundary.guard_message, shared with FlyDSL).

Large weights stay affordable: `torch.empty` (virtual memory until touched), with only the
routed experts' checked rows filled. Tokens are routed to the highest experts (largest
offsets). Checked: every routed row, in the first and last N-block's columns. On the
interpreter only those two N-blocks run (the launcher's only_edge_n_blocks).
"""

from __future__ import annotations

import os
from types import ModuleType

import torch

from moegen.core.sweep import TOKEN_COUNTS, BoundaryCase
from moegen.core.vocabulary import TOKEN_BITS, TOKEN_MASK
from moegen.harness import boundary, scaled, verdict
from moegen.runtime import launch, reference, routing


def use_interpreter_without_gpu() -> str:
    """Pick this process's executor before any kernel module is imported: "gpu" when torch
    sees one, else "interpreter" (and set TRITON_INTERPRET=1 for the imports that follow)."""
    if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return "gpu"
    os.environ["TRITON_INTERPRET"] = "1"
    return "interpreter"


def cases(rows: list[tuple[str, int, int, int, str]], *, addressable: bool) -> list[BoundaryCase]:
    """BoundaryCases from the (label, inter, experts, topk, tokens label) rows a test lists."""
    return [
        BoundaryCase(label, inter, experts, topk, tokens, TOKEN_COUNTS[tokens], addressable)
        for label, inter, experts, topk, tokens in rows
    ]


def sorted_routing(module: ModuleType, case: BoundaryCase, seed: int = 0):
    """(topk_ids, topk_weights, moe_sorting output) with every token on the highest experts."""
    experts = [case.experts - 1 - i for i in range(case.topk)]
    topk_ids, topk_w = routing.route_to_experts(case.tokens, case.topk, experts, seed=seed)
    block = module.block_m(case.tokens)
    return topk_ids, topk_w, routing.moe_sorting(topk_ids, topk_w, case.experts, block)


def _fill(t: torch.Tensor, index: tuple, gen: torch.Generator, std: float, scale=None) -> None:
    """t[index] = N(0, std) values; quantized per row into scale[index] for a scaled dtype."""
    shape = torch.empty(t.shape, device="meta")[index].shape
    scaled.fill(t, scale, index, verdict.randn(shape, gen, std))


def _deq(rows: torch.Tensor, scale) -> torch.Tensor:
    """fp32 values of stored rows with their per-row scales (a scaled dtype), on rows' device."""
    return scaled.dequantized(rows, scale).to(rows.device)


def edge_columns(n_total: int, block_n: int) -> torch.Tensor:
    """The columns of the first and the last N-block (the last may be partial)."""
    last = (n_total - 1) // block_n
    blocks = sorted({0, last})
    return torch.cat([torch.arange(b * block_n, min(n_total, (b + 1) * block_n)) for b in blocks])


def _run(plan: launch.LaunchPlan, executor: str) -> torch.Tensor:
    if executor == "gpu":
        out = launch.run_plan(plan)
        torch.cuda.synchronize()
        return out
    for step in plan.pre:
        step.fn()
    for call in plan.kernels:
        call.launcher(*call.args, **call.constexprs, only_edge_n_blocks=1)
    for step in plan.post:
        step.fn()
    return plan.result


def _rows(sorted_ids: torch.Tensor, expert_ids: torch.Tensor, tokens: int, block: int):
    out = []
    for r, packed in enumerate(sorted_ids.tolist()):
        token = packed & TOKEN_MASK
        if token < tokens:
            out.append((token, packed >> TOKEN_BITS, int(expert_ids[r // block])))
    return out


def _accumulation(executor: str, k: int) -> float:
    """The fp32 accumulation term of the verdict's bound: a GPU's matrix units may truncate
    their accumulator each MMA step (verdict.tensor_core_accumulation_rtol); the interpreter
    sums in numpy float32 (the default term)."""
    if executor == "gpu":
        return verdict.tensor_core_accumulation_rtol(k)
    return verdict.ACCUMULATION_RTOL


def run_case(
    module: ModuleType,
    case: BoundaryCase,
    executor: str,
    *,
    model_dim: int,
    arch: str,
    seed: int = 0,
) -> verdict.Verdict:
    """Run an addressable case; the per-row verdict of every routed row's checked columns."""
    v = module.VARIANT
    act = getattr(torch, module.ACT_DTYPES[arch])
    wdt = getattr(torch, module.WEIGHT_DTYPES[arch])
    device = "cuda" if executor == "gpu" else "cpu"
    gen = torch.Generator().manual_seed(seed)
    topk_ids, topk_w, sorted_r = sorted_routing(module, case, seed)
    E, D, inter, T, K = case.experts, model_dim, case.inter, case.tokens, case.topk
    block = module.block_m(T)
    cfg = module.config_for(module.CONFIGS, T)
    rows = _rows(sorted_r[0].cpu(), sorted_r[2].cpu(), T, block)
    routed = sorted({e for _, _, e in rows})
    on_device = tuple(t.to(device) for t in sorted_r)
    if v["stage"] == 1:
        cols = edge_columns(inter, cfg.block_n)
        w = torch.empty(E, 2 * inter, D, dtype=wdt, device=device)  # virtual until filled
        x = torch.empty(T, D, dtype=act, device=device)
        sc = scaled.Scales(v, x, w)  # a scaled dtype's scale tensors (else none)
        ws = sc.weight
        _fill(x, (slice(None),), gen, verdict.ACT_STD, sc.act)
        for e in routed:
            _fill(w, (e, cols), gen, verdict.weight_std(D), ws)
            _fill(w, (e, cols + inter), gen, verdict.weight_std(D), ws)
        out = _run(module.prepare(x, w, *on_device, topk=K, **sc.kwargs()), executor)
        dcols = cols.to(device)
        got, ref = [], []
        for e in routed:
            mine = [(t, s) for t, s, ee in rows if ee == e]
            t_idx = torch.tensor([t for t, _ in mine], device=device)
            s_idx = torch.tensor([s for _, s in mine], device=device)
            xf = _deq(x[t_idx], None if sc.act is None else sc.act[t_idx])
            gate = xf @ _deq(w[e, dcols], None if ws is None else ws[e, dcols]).T
            up = xf @ _deq(w[e, dcols + inter], None if ws is None else ws[e, dcols + inter]).T
            h = reference.gated(gate, up)
            if v["doweight"]:
                h = h * topk_w.to(device)[t_idx, s_idx].float().unsqueeze(1)
            ref.append(h.cpu())
            got.append(out[t_idx, s_idx][:, dcols].float().cpu())
        keys = [verdict.RowKey(t, s, (e,)) for e in routed for t, s, ee in rows if ee == e]
        return verdict.judge(
            torch.cat(got),
            torch.cat(ref),
            keys,
            out_dtype=out.dtype,
            slab_bytes=verdict.slab_bytes(w),
            accumulation=_accumulation(executor, D),
        )
    cols = edge_columns(D, cfg.block_n)
    w = torch.empty(E, D, inter, dtype=wdt, device=device)
    a2 = torch.empty(T * K, inter, dtype=act, device=device)
    sc = scaled.Scales(v, a2, w)
    _fill(a2, (slice(None),), gen, verdict.ACT_STD, sc.act)
    for e in routed:
        _fill(w, (e, cols), gen, verdict.weight_std(inter), sc.weight)
    out = _run(module.prepare(a2, w, *on_device, topk=K, **sc.kwargs()), executor)
    dcols = cols.to(device)
    ref = torch.zeros(T, cols.numel(), dtype=torch.float32, device=device)
    tw = topk_w.to(device).float()
    for e in routed:
        mine = [(t, s) for t, s, ee in rows if ee == e]
        t_idx = torch.tensor([t for t, _ in mine], device=device)
        s_idx = torch.tensor([s for _, s in mine], device=device)
        r_idx = t_idx * K + s_idx
        a2f = _deq(a2[r_idx], None if sc.act is None else sc.act[r_idx])
        wf = _deq(w[e, dcols], None if sc.weight is None else sc.weight[e, dcols])
        contrib = (a2f @ wf.T) * tw[t_idx, s_idx].unsqueeze(1)
        ref.index_add_(0, t_idx, contrib)
    experts_of: dict[int, list[int]] = {}
    for t, _, e in rows:
        experts_of.setdefault(t, []).append(e)
    toks = sorted(experts_of)
    keys = [verdict.RowKey(t, None, tuple(sorted(experts_of[t]))) for t in toks]
    tok_idx = torch.tensor(toks, device=device)
    return verdict.judge(
        out[tok_idx][:, dcols].float().cpu(),
        ref[tok_idx].cpu(),
        keys,
        out_dtype=out.dtype,
        slab_bytes=verdict.slab_bytes(w),
        accumulation=_accumulation(executor, inter),
    )


def guard_message(module: ModuleType, case: BoundaryCase, *, model_dim: int, arch: str) -> str:
    """Call the variant's entry point on meta tensors of the case's shape, sorted with the
    block its config needs; return the guard's ValueError text (AssertionError if it ran)."""
    _, _, cpu_routing = sorted_routing(module, case)
    return boundary.refusal(
        module, case, cpu_routing, model_dim=model_dim, arch=arch, offsets="i32"
    )
