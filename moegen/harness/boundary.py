"""The runtime half of the generated boundary tests (generated/tests/test_<variant>.py).

The address model decides each variant's cases at render time (they are literals in the
generated test); this module runs one case:

- an addressable case runs the variant's kernels on an executor (real ROCm GPU or the CPU
  emulator) and returns the per-row moegen.harness.verdict against an fp32 reference, on
  moegen.harness.verdict's data recipe (pre-activations of a few units, where SiLU is not linear);
- an unaddressable case must be refused by the launcher's guard (a ValueError naming the
  tensor and the 32-bit limit) before anything is launched.

Production shapes are made affordable on a CPU the way real bugs are found: tokens are routed
to the highest experts (largest weight offsets), weights are `torch.empty` (virtual memory)
with only the rows the checked workgroups read filled in, and the emulator runs only those
workgroups: the first and last N-block, for the first and last M-block of the highest expert
and the first M-block of the lowest routed expert. Only their outputs are compared, row by
row, so the verdict would also see a wrong row routed to any other expert.

A per_expert variant's own-line cases (`own_*`, one slab just below 2**32 bytes at E=2) run
only the workgroup that reaches the slab's far end: the last N-block of the highest expert's
last (partly padded) M-block. Their largest offset is the case's point; the first N-block and the low expert
(base 0) repeat what the seed-line cases already prove, and at stage 2 (K = inter, about
350k) each workgroup emulates thousands of K tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

from moegen.core.sweep import TOKEN_COUNTS, BoundaryCase
from moegen.core.vocabulary import TOKEN_BITS, TOKEN_MASK
from moegen.harness import execute, scaled, verdict
from moegen.runtime import launch, reference, routing


@dataclass(frozen=True)
class Covered:
    """What the checked workgroups compute: sorted rows (token, slot, expert, weight) and columns."""

    rows: list[tuple[int, int, int, float]]
    cols: torch.Tensor
    n_blocks: tuple[int, ...]
    m_blocks: tuple[int, ...]
    split_k: int

    @property
    def only_wgs(self) -> list[tuple[int, int, int]]:
        """The checked workgroups (grid x = N-block, y = M-block, z = K slice)."""
        return [
            (x, y, z) for x in self.n_blocks for y in self.m_blocks for z in range(self.split_k)
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
    last_n = n_total // v["tile_n"] - 1
    if case.label.startswith("own_"):  # the slab's far end only (module docstring)
        m_blocks, n_blocks = (top_blocks[-1],), (last_n,)
    else:
        m_blocks = tuple(sorted({top_blocks[0], top_blocks[-1], eids.index(low)}))
        n_blocks = tuple(sorted({0, last_n}))
    cols = torch.cat([torch.arange(b * v["tile_n"], (b + 1) * v["tile_n"]) for b in n_blocks])
    rows = []
    for b in m_blocks:
        for r in range(b * tile_m, (b + 1) * tile_m):
            packed = int(ids[r])
            token, slot = packed & TOKEN_MASK, packed >> TOKEN_BITS
            if token < case.tokens:
                rows.append((token, slot, eids[b], float(weights[r])))
    return Covered(rows, cols, n_blocks, m_blocks, v["split_k"])


def _fill(
    t: torch.Tensor,
    index: tuple,
    gen: torch.Generator,
    std: float,
    scale: torch.Tensor | None = None,
    group: int = 0,
    weight_format: str | None = None,
) -> None:
    """t[index] = N(0, std^2) samples, touching only those elements (index may be advanced);
    quantized per row (per `group` along K; onto `weight_format` int4's range) into
    scale[index] when the operand has a scale (moegen.harness.scaled)."""
    shape = torch.empty(t.shape, device="meta")[index].shape
    scaled.fill(t, scale, index, verdict.randn(shape, gen, std), group, weight_format)


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
) -> verdict.Verdict:
    """Run an addressable case on `executor`; returns the per-row verdict of the checked
    outputs (stage 1: each checked (token, slot) row; stage 2: each checked token row).

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
        w = scaled.logical_weight(v, (E, 2 * inter, D), wdt, device)  # virtual until filled
        # x: a row per token, or (act_rows expanded) per (token, slot), slot-major
        expanded = v.get("act_rows") == "expanded"

        def x_row(t: int, s: int) -> int:
            return s * T + t if expanded else t

        x = torch.empty(T * K if expanded else T, D, dtype=act, device=device)
        sc = scaled.Scales(v, x, w)  # a scaled dtype's scale tensors (else none)
        x_rows = {0} | {x_row(t, s) for t, s, _, _ in cov.rows}
        _fill(x, (torch.tensor(sorted(x_rows)),), gen, verdict.ACT_STD, sc.act)
        for e in routed:
            _fill(w, (e, cov.cols), gen, verdict.weight_std(D), sc.weight, sc.group, sc.weight_format)
            _fill(w, (e, cov.cols + inter), gen, verdict.weight_std(D), sc.weight, sc.group, sc.weight_format)
        stored = _stored(v, w, wdt, routed, cov, inter)
        plan = module.prepare(x, stored, *on_device, topk=K, **sc.kwargs())
        out, ambiguous = _execute(plan, executor, arch, cov)
        got = torch.stack([out[t, s, cov.cols].float() for t, s, _, _ in cov.rows])
        ref = []
        ws = sc.weight

        def w_rows(e: int, cols: torch.Tensor) -> torch.Tensor:
            return scaled.dequantized(
                w[e, cols], None if ws is None else ws[e, cols], sc.group, sc.dequant_dtype
            )

        # each expert's rows converted once; the reference reads dequantized values (plain
        # ones for an unscaled dtype)
        gates = {e: w_rows(e, cov.cols) for e in {e for _, _, e, _ in cov.rows}}
        ups = {e: w_rows(e, cov.cols + inter) for e in gates}
        for t, s, e, rw in cov.rows:
            xr = x_row(t, s)
            xf = scaled.dequantized(x[xr], None if sc.act is None else sc.act[xr])
            gate, up = gates[e] @ xf, ups[e] @ xf
            h = reference.gated(gate, up)
            ref.append(h * rw if v["doweight"] else h)
        keys = [verdict.RowKey(t, s, (e,)) for t, s, e, _ in cov.rows]
        checked = {(t, s) for t, s, _, _ in cov.rows}
        ref_rows = torch.stack(ref)
        return _judge(got, ref_rows, keys, out.dtype, stored, ambiguous, sorted_routing, v, checked)
    w = scaled.logical_weight(v, (E, D, inter), wdt, device)
    a2 = torch.empty(T * K, inter, dtype=act, device=device)
    sc = scaled.Scales(v, a2, w)
    a2_rows = torch.tensor(sorted({0} | {t * K + s for t, s, _, _ in rows}))
    _fill(a2, (a2_rows,), gen, verdict.ACT_STD, sc.act)
    for e in routed:
        _fill(w, (e, cov.cols), gen, verdict.weight_std(inter), sc.weight, sc.group, sc.weight_format)
    stored = _stored(v, w, wdt, routed, cov, None)
    plan = module.prepare(a2, stored, *on_device, topk=K, **sc.kwargs())
    out, ambiguous = _execute(plan, executor, arch, cov)
    ref: dict[int, torch.Tensor] = {}
    experts: dict[int, list[int]] = {}
    w_deq = {
        e: scaled.dequantized(
            w[e, cov.cols],
            None if sc.weight is None else sc.weight[e, cov.cols],
            sc.group,
            sc.dequant_dtype,
        )
        for e in {e for _, _, e, _ in rows}
    }
    for t, s, e, rw in rows:
        r = t * K + s
        a2f = scaled.dequantized(a2[r], None if sc.act is None else sc.act[r])
        contrib = (w_deq[e] @ a2f) * rw
        ref[t] = ref.get(t, 0) + contrib
        experts.setdefault(t, []).append(e)
    toks = sorted(ref)
    got = torch.stack([out[t, cov.cols].float() for t in toks])
    keys = [verdict.RowKey(t, None, tuple(sorted(experts[t]))) for t in toks]
    checked = {(t, s) for t, s, _, _ in rows}
    ref_rows = torch.stack([ref[t] for t in toks])
    return _judge(got, ref_rows, keys, out.dtype, stored, ambiguous, sorted_routing, v, checked)


def _stored(
    v: dict, w: torch.Tensor, dtype: torch.dtype, routed: list[int], cov: Covered, up_rows: int | None
):
    """The kernel's copy of the lazily filled logical weight `w`, in the variant's layout: only
    the filled rows (whole N-blocks, so whole 16-row groups; stage 1 also the up rows
    `up_rows` further) are written, so a 9 GiB tensor stays virtual. The value at each byte
    address follows the layout's mapping; the reference keeps reading the logical `w`."""
    stored = torch.empty(scaled.stored_shape(v, tuple(w.shape)), dtype=dtype, device=w.device)
    tile_n = v["tile_n"]
    for e in routed:
        for b in cov.n_blocks:
            for first in (b * tile_n,) if up_rows is None else (b * tile_n, b * tile_n + up_rows):
                execute.store_weight(v, stored, w, e, range(first, first + tile_n))
    return stored


def _execute(plan, executor: str, arch: str, cov: Covered) -> tuple[torch.Tensor, list]:
    """(result on the CPU, the emulator's ambiguous accesses; none on a GPU)."""
    if executor == "emulator":
        run = execute.emulate(plan, arch=arch, only_wgs=cov.only_wgs)
        return run.result, run.ambiguous_accesses
    return execute.run(plan, executor, arch=arch).cpu(), []


def _judge(
    got: torch.Tensor,
    ref: torch.Tensor,
    keys: list[verdict.RowKey],
    out_dtype: torch.dtype,
    weight: torch.Tensor,
    ambiguous: list,
    sorted_routing,
    v: dict,
    checked: set[tuple[int, int]],
) -> verdict.Verdict:
    """verdict.judge of the checked rows, keeping the ambiguous accesses that touch them."""
    touching = verdict.touching(ambiguous, sorted_routing[0], v["tile_m"], checked, TOKEN_BITS)
    return verdict.judge(
        got,
        ref,
        keys,
        out_dtype=out_dtype,
        slab_bytes=verdict.slab_bytes(weight),
        ambiguous=touching,
        accumulation=verdict.accumulation_rtol(v),
    )


def guard_message(module: ModuleType, case: BoundaryCase, *, model_dim: int, arch: str) -> str:
    """Call the variant's entry point on meta tensors of the case's shape; return the guard's
    ValueError text. AssertionError if it did not refuse (it must, before any launch)."""
    _, _, cpu_routing = _routing(case, module.VARIANT["tile_m"], seed=0)
    return refusal(module, case, cpu_routing, model_dim=model_dim, arch=arch, offsets="32-bit")


def refusal(
    module: ModuleType, case: BoundaryCase, routing, *, model_dim: int, arch: str, offsets: str
) -> str:
    """Any backend's module: its entry point called on meta tensors of the case's shape (and,
    for a scaled dtype, empty scales), with the CPU `routing` moved to meta (one device: only
    the guard speaks). Returns the guard's ValueError text; AssertionError if it accepted."""
    v = module.VARIANT
    act, wdt = _dtypes(module, arch)
    meta_routing = tuple(t.to("meta") for t in routing)
    E, D, inter, T, K = case.experts, model_dim, case.inter, case.tokens, case.topk
    if v["stage"] == 1:
        operands = (
            torch.empty(T, D, dtype=act, device="meta"),
            torch.empty(scaled.stored_shape(v, (E, 2 * inter, D)), dtype=wdt, device="meta"),
        )
        entry = module.moe_stage1
    else:
        operands = (
            torch.empty(T * K, inter, dtype=act, device="meta"),
            torch.empty(scaled.stored_shape(v, (E, D, inter)), dtype=wdt, device="meta"),
        )
        entry = module.moe_stage2
    try:
        entry(*operands, *meta_routing, topk=K, **launch.empty_scales(v, *operands))
    except ValueError as exc:
        return str(exc)
    raise AssertionError(
        f"{v['name']} accepted {case.id}, which its {offsets} offsets cannot address"
    )


def emulate_routed(case: execute.KernelCase, plan) -> verdict.Verdict:
    """Emulate only the routed M-blocks of a make_case() case (a case past a 4 GiB line has
    thousands of experts, and the grid covers their worst-case routing: the other blocks hold
    padding) and judge them: stage 1 in N-block 0, judged on its columns; stage 2 in every
    N-block, judged whole (its atomic sums lack nothing: the blocks left out add nothing)."""
    v = case.module.VARIANT
    routed = range(int(case.sorted_routing[3][0]) // v["tile_m"])
    if v["stage"] == 1:
        wgs = [(0, y, 0) for y in routed]
        run = execute.emulate(plan, arch=case.arch, only_wgs=wgs)
        return case.judge(run.result, only_wgs=wgs, ambiguous=run.ambiguous_accesses)
    n_blocks = case.reference.shape[-1] // v["tile_n"]
    wgs = [(x, y, 0) for x in range(n_blocks) for y in routed]
    run = execute.emulate(plan, arch=case.arch, only_wgs=wgs)
    return case.judge(run.result, ambiguous=run.ambiguous_accesses)
