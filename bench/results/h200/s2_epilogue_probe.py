"""Stage-2 prefill probe (H200, T=2048): tiles x program-id order x atomic semantics x epilogue,
each against torch._grouped_mm in the same run. Produced tune_s2_prefill_epilogue.log:

    PYTHONPATH=$PWD python3 bench/results/h200/s2_epilogue_probe.py --swizzle   # run 1 (acq_rel; g0 / g8)
    PYTHONPATH=$PWD python3 bench/results/h200/s2_epilogue_probe.py             # run 2 (g0; acq_rel / relaxed)

(run 1 also tried (64,256,64,8,3)-style tiles listed in its log: m16-m128, n128/256; this file
keeps the five tiles of run 2.)
The kernel is the stage-2 template's per_expert kernel (EVEN_K, no column mask: D % n == 0 here)
with three switches: GROUP (0: N-blocks of one M-block adjacent, as the template; G: GROUP_M-style
order, G M-blocks per N-block), SEM (0: tl.atomic_add's default acq_rel, 1: relaxed) and EPI
(0: float32 atomics into out; 1: per-slot bf16 stores into [T*topk, D], then a torch sum over topk).
"""

import sys, time, itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
import torch, triton, triton.language as tl
from triton.testing import do_bench
from moegen.backends.triton.device import routed_rows
from moegen.runtime import routing, launch
import importlib

E, D, TOPK, T = 128, 6144, 4, 2048


@triton.jit
def k_s2(
    A2,
    W,
    Ids,
    Wts,
    Eids,
    Nvalid,
    Out,
    tokens,
    topk,
    num_m,
    grid_n,
    MODEL_DIM: tl.constexpr,
    INTER: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP: tl.constexpr,
    EPI: tl.constexpr,
    SEM: tl.constexpr = 0,
):
    pid = tl.program_id(0)
    if GROUP == 0:
        pid_n = pid % grid_n
        pid_m = pid // grid_n
    else:
        in_group = GROUP * grid_n
        first_m = (pid // in_group) * GROUP
        gsize = tl.minimum(num_m - first_m, GROUP)
        pid_m = first_m + (pid % in_group) % gsize
        pid_n = (pid % in_group) // gsize
    if pid_m * BLOCK_M >= tl.load(Nvalid):
        return
    expert = tl.load(Eids + pid_m)
    token, slot, routed, rows = routed_rows(Ids, pid_m, tokens, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    a_ptrs = A2 + (token * topk + slot)[:, None] * INTER + ks[None, :]
    w_base = W + expert.to(tl.int64) * (MODEL_DIM * INTER)
    w_ptrs = w_base + (cols[None, :] * INTER + ks[:, None])
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, INTER, BLOCK_K):
        a = tl.load(a_ptrs, mask=routed[:, None], other=0.0)
        b = tl.load(w_ptrs)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    acc = acc * tl.load(Wts + rows)[:, None]
    if EPI == 0:
        if SEM == 0:
            tl.atomic_add(
                Out + token[:, None] * MODEL_DIM + cols[None, :], acc, mask=routed[:, None]
            )
        else:
            tl.atomic_add(
                Out + token[:, None] * MODEL_DIM + cols[None, :],
                acc,
                mask=routed[:, None],
                sem="relaxed",
            )
    else:  # per-slot plain store into [T*topk, D]
        tl.store(
            Out + (token * topk + slot)[:, None] * MODEL_DIM + cols[None, :],
            acc.to(Out.dtype.element_ty),
            mask=routed[:, None],
        )


def main():
    dt = torch.bfloat16
    inters = [1280, 1408, 3072]
    orders = [(0, 0), (8, 0)] if "--swizzle" in sys.argv else [(0, 0), (0, 1)]
    tiles = [
        (64, 128, 64, 8, 3),
        (64, 128, 64, 8, 4),
        (128, 128, 64, 8, 3),
        (64, 256, 64, 8, 3),
        (32, 128, 64, 4, 4),
    ]
    mod = importlib.import_module("generated.triton.moe_s2_bf16_per_expert_triton")
    g = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.rand(T, E, device="cuda", generator=g).topk(TOPK).indices.int()
    wts = torch.softmax(torch.randn(T, TOPK, device="cuda", generator=g), dim=1)
    sorted_by = {m: routing.moe_sorting(ids, wts, E, m) for m in (16, 32, 64, 128)}
    for m, s in sorted_by.items():
        print(f"block {m}: valid rows {int(s[3][0])} (routed {T*TOPK})")
    res = {}
    for inter in inters:
        w2 = torch.randn(E, D, inter, device="cuda", dtype=dt) * 0.02
        a2 = torch.randn(T * TOPK, inter, device="cuda", dtype=dt)
        flat = ids.flatten().long()
        order = flat.argsort()
        offs = torch.bincount(flat, minlength=E).cumsum(0).int()
        a2s = a2[order]
        gm = do_bench(lambda: torch._grouped_mm(a2s, w2.transpose(1, 2), offs=offs))
        sr = routing.moe_sorting(ids, wts, E, mod.block_m(T))
        plan = mod.prepare(a2, w2, *sr, topk=TOPK)
        cur = do_bench(lambda: launch.run_plan(plan))
        out = torch.empty(T, D, device="cuda", dtype=torch.float32)
        zero = do_bench(out.zero_)
        print(
            f"I={inter} gm {gm*1e3:.1f} us | current plan {cur*1e3:.1f} ({cur/gm:.3f}x) | zero_ {zero*1e3:.1f} us",
            flush=True,
        )
        # reference for correctness
        ref = launch.run_plan(plan).clone()
        buf = torch.empty(T * TOPK, D, device="cuda", dtype=dt)
        for (m, n, k, w, s), (grp, sem), epi in itertools.product(tiles, orders, (0,)):
            st = sorted_by[m]
            num_m = st[2].numel()
            grid_n = D // n

            def go(epi=epi, grp=grp, sem=sem):
                if epi == 0:
                    out.zero_()
                    dst = out
                else:
                    dst = buf
                k_s2[(num_m * grid_n,)](
                    a2,
                    w2,
                    *st,
                    dst,
                    T,
                    TOPK,
                    num_m,
                    grid_n,
                    MODEL_DIM=D,
                    INTER=inter,
                    BLOCK_M=m,
                    BLOCK_N=n,
                    BLOCK_K=k,
                    GROUP=grp,
                    SEM=sem,
                    EPI=epi,
                    num_warps=w,
                    num_stages=s,
                )
                return out if epi == 0 else buf.view(T, TOPK, D).sum(1, dtype=torch.float32)

            try:
                r = go()
                torch.cuda.synchronize()
                err = ((r - ref).abs().max() / ref.abs().max()).item()
                ms = do_bench(go)
            except Exception as exc:
                print(
                    f"  I={inter} {(m,n,k,w,s)} g{grp} sem{sem} e{epi}: {type(exc).__name__} {str(exc)[:80]}"
                )
                continue
            res.setdefault(((m, n, k, w, s), grp, sem, epi), []).append(ms / gm)
            print(
                f"  I={inter} {(m,n,k,w,s)} g{grp} sem{sem} e{epi}: {ms*1e3:.1f} us  {ms/gm:.3f}x  err {err:.1e}",
                flush=True,
            )
        # reduce epilogue for current tile and two others
        for m, n, k, w, s in [(64, 128, 64, 8, 3)]:
            st = sorted_by[m]
            num_m = st[2].numel()
            grid_n = D // n

            def go2():
                k_s2[(num_m * grid_n,)](
                    a2,
                    w2,
                    *st,
                    buf,
                    T,
                    TOPK,
                    num_m,
                    grid_n,
                    MODEL_DIM=D,
                    INTER=inter,
                    BLOCK_M=m,
                    BLOCK_N=n,
                    BLOCK_K=k,
                    GROUP=0,
                    EPI=1,
                    num_warps=w,
                    num_stages=s,
                )
                return buf.view(T, TOPK, D).sum(1, dtype=torch.float32)

            r = go2()
            err = ((r - ref).abs().max() / ref.abs().max()).item()
            ms = do_bench(go2)
            print(
                f"  I={inter} {(m,n,k,w,s)} reduce-bf16: {ms*1e3:.1f} us  {ms/gm:.3f}x  err {err:.1e}",
                flush=True,
            )
        del w2, a2, a2s, buf
        torch.cuda.empty_cache()
    print("SUMMARY (ratio to gm at each inter, sorted by max)")
    for key, v in sorted(res.items(), key=lambda kv: max(kv[1])):
        if len(v) == len(inters):
            print(f"  {key}: {' / '.join(f'{x:.3f}' for x in v)}")


main()
