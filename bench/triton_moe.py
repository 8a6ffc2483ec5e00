"""GPU benchmark of the Triton variants at the seed's shapes, against torch._grouped_mm.

    python bench/triton_moe.py [--out DIR] [--dtype bf16|fp16|fp8] [--inters 1280,1408,3072] [--tokens 16,128,2048]
    python bench/triton_moe.py --tune   # sweep tile configs per (stage, token count); YAML to paste

Prints, in one run: the card's copy bandwidth (bytes read + written); for E=128, model_dim 6144,
topk 4, random routing, each (inter, tokens): every Triton variant's stage latency (the whole
launch plan: zeroing, kernels, split-K reduction), the expert-weight bytes it touched (distinct
routed experts x slab), the fraction of copy bandwidth that is, TF/s, torch._grouped_mm on the
same inputs in the same run (stage 1: x sorted by expert @ W1^T; stage 2: a2 @ W2^T) and the
ratio, and the per_expert / whole_tensor ratio where both can run (whole_tensor variants are
refused past their line: "refused"). Writes triton_moe.csv and triton_moe.png to --out.
Timing: triton.testing.do_bench (median, L2 flushed between runs).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import sys
from pathlib import Path

import torch
from triton.testing import do_bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moegen.backends.triton.device import TileConfig  # noqa: E402
from moegen.runtime import launch, routing  # noqa: E402

E, D, TOPK = 128, 6144, 4


def copy_bandwidth() -> float:
    """Bytes read + written per second by a 2 GiB device-to-device copy."""
    src = torch.empty(2**31, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = do_bench(lambda: dst.copy_(src))
    del src, dst
    return 2 * 2**31 / (ms * 1e-3)


def modules(dtype: str) -> dict[tuple[int, int, str], object]:
    """(stage, split_k, addressing) -> the generated Triton kernel module (those that exist:
    a scaled dtype has no split-K variant)."""
    out = {}
    for stage, split_k, addr in (
        (1, 1, "whole_tensor"),
        (1, 1, "per_expert"),
        (1, 2, "whole_tensor"),
        (1, 2, "per_expert"),
        (2, 1, "whole_tensor"),
        (2, 1, "per_expert"),
    ):
        suffix = f"_splitk{split_k}" if split_k != 1 else ""
        name = f"generated.triton.moe_s{stage}_{dtype}_{addr}{suffix}_triton"
        if importlib.util.find_spec(name) is not None:
            out[(stage, split_k, addr)] = importlib.import_module(name)
    return out


def routing_for(tokens: int, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    topk_ids = torch.rand(tokens, E, device="cuda", generator=g).topk(TOPK).indices.int()
    topk_w = torch.softmax(torch.randn(tokens, TOPK, device="cuda", generator=g), dim=1)
    return topk_ids, topk_w


def time_plan(module, act, w, topk_ids, topk_w) -> float | None:
    """Median ms of the variant's whole plan, or None when its guard refuses the shape. A scaled
    dtype gets unit scales of the declared layouts (timing only: values do not change the work)."""
    tokens = topk_ids.shape[0]
    sorted_r = routing.moe_sorting(topk_ids, topk_w, E, module.block_m(tokens))
    scales = {
        n: torch.ones(s.shape, dtype=getattr(torch, s.dtype), device=act.device)
        for n, s in launch.scale_layouts(module.VARIANT, tuple(act.shape), tuple(w.shape)).items()
    }
    try:
        plan = module.prepare(act, w, *sorted_r, topk=TOPK, **scales)
    except ValueError:
        return None
    return do_bench(lambda: launch.run_plan(plan))


def grouped_mm_inputs(x, topk_ids, inter, a2):
    ids = topk_ids.flatten().long()
    order = ids.argsort()
    counts = torch.bincount(ids, minlength=E)
    offs = counts.cumsum(0).int()
    xs = x[order // TOPK]
    a2s = a2[order]
    return xs, a2s, offs, int((counts > 0).sum())


# torch dtype of each benchmarked dtype on the CUDA card; fp8's torch._grouped_mm anchor runs
# bf16 on the same values (the ratio compares fp8 kernels with torch's bf16 grouped GEMM).
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp8": "float8_e4m3fn"}


def run(args) -> list[dict]:
    kdt = getattr(torch, TORCH_DTYPES[args.dtype])  # the kernels' operand dtype
    dt = torch.bfloat16 if kdt.itemsize == 1 else kdt  # torch._grouped_mm's
    mods = modules(args.dtype)
    bw = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"copy bandwidth (read + write): {bw / 1e12:.2f} TB/s")
    rows = []
    for inter in args.inters:
        w1 = torch.randn(E, 2 * inter, D, device="cuda", dtype=dt) * 0.02
        w2 = torch.randn(E, D, inter, device="cuda", dtype=dt) * 0.02
        for tokens in args.tokens:
            topk_ids, topk_w = routing_for(tokens)
            x = torch.randn(tokens, D, device="cuda", dtype=dt)
            a2 = torch.randn(tokens * TOPK, inter, device="cuda", dtype=dt)
            xs, a2s, offs, touched = grouped_mm_inputs(x, topk_ids, inter, a2)
            gm = {
                1: do_bench(lambda: torch._grouped_mm(xs, w1.transpose(1, 2), offs=offs)),
                2: do_bench(lambda: torch._grouped_mm(a2s, w2.transpose(1, 2), offs=offs)),
            }
            kin = {  # the kernels' operands (the same tensors unless the dtype is 8-bit)
                1: (x.to(kdt), w1.to(kdt)) if kdt != dt else (x, w1),
                2: (a2.to(kdt), w2.to(kdt)) if kdt != dt else (a2, w2),
            }
            slab = {1: 2 * inter * D * kdt.itemsize, 2: D * inter * kdt.itemsize}
            flops = {1: 2 * tokens * TOPK * 2 * inter * D, 2: 2 * tokens * TOPK * D * inter}
            ms_of = {}
            for (stage, split_k, addr), mod in mods.items():
                act, w = kin[stage]
                ms = time_plan(mod, act, w, topk_ids, topk_w)
                ms_of[(stage, split_k, addr)] = ms
                row = dict(
                    inter=inter,
                    tokens=tokens,
                    stage=stage,
                    split_k=split_k,
                    addressing=addr,
                    variant=mod.VARIANT["name"],
                    experts_touched=touched,
                    weight_bytes_touched=touched * slab[stage],
                    grouped_mm_us=round(gm[stage] * 1e3, 1),
                )
                if ms is None:
                    row.update(us="refused")
                else:
                    row.update(
                        us=round(ms * 1e3, 1),
                        frac_copy_bw=round(touched * slab[stage] / (ms * 1e-3) / bw, 3),
                        tflops=round(flops[stage] / (ms * 1e-3) / 1e12, 1),
                        vs_grouped_mm=round(ms / gm[stage], 3),
                    )
                rows.append(row)
            for stage, split_k in ((1, 1), (1, 2), (2, 1)):
                wt, pe = (
                    ms_of.get((stage, split_k, "whole_tensor")),
                    ms_of.get((stage, split_k, "per_expert")),
                )
                for r in rows[-len(mods) :]:
                    if (r["stage"], r["split_k"]) == (stage, split_k) and wt and pe:
                        r["per_expert_over_whole_tensor"] = round(pe / wt, 3)
            del kin
            for r in rows[-len(mods) :]:
                print(
                    f"I={inter} T={tokens:5d} {r['variant']:40s} {str(r['us']):>9} us  "
                    f"gm {r['grouped_mm_us']:8.1f} us  x{r.get('vs_grouped_mm', '-')}  "
                    f"bw {r.get('frac_copy_bw', '-')}  {r.get('tflops', '-')} TF/s  "
                    f"pe/wt {r.get('per_expert_over_whole_tensor', '-')}"
                )
        del w1, w2
        torch.cuda.empty_cache()
    for r in rows:
        r["copy_bw_TBps"] = round(bw / 1e12, 3)
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted(
        {k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99
    )
    with open(out / "triton_moe.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inters = sorted({r["inter"] for r in rows})
    fig, axes = plt.subplots(2, len(inters), figsize=(5 * len(inters), 8), squeeze=False)
    for j, inter in enumerate(inters):
        for i, stage in enumerate((1, 2)):
            ax = axes[i][j]
            sel = [r for r in rows if r["inter"] == inter and r["stage"] == stage]
            toks = sorted({r["tokens"] for r in sel})
            names = sorted({r["variant"] for r in sel})
            for name in names:
                pts = [
                    (r["tokens"], r["us"])
                    for r in sel
                    if r["variant"] == name and r["us"] != "refused"
                ]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=name.replace("_triton", ""))
            gm = [(t, next(r["grouped_mm_us"] for r in sel if r["tokens"] == t)) for t in toks]
            ax.plot(*zip(*gm), "k--", marker="x", label="torch._grouped_mm")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"stage {stage}, inter {inter}")
            ax.set_xlabel("tokens")
            ax.set_ylabel("us")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "triton_moe.png", dpi=110)


def tune(args) -> None:
    """Sweep tile configs per (stage, split_k, tokens) on the per_expert variants over every
    --inters value; print each config's latency and, per (stage, split_k, tokens), the config
    with the least total time over the inters as a YAML configs entry."""
    kdt = getattr(torch, TORCH_DTYPES[args.dtype])
    dt = torch.bfloat16 if kdt.itemsize == 1 else kdt  # random values made here, then cast
    mods = modules(args.dtype)
    ks = (128, 256) if kdt.itemsize == 2 else (256, 512)  # the same bytes per K step
    space = {
        16: [(16, n, k, 4, s) for n in (32, 64, 128) for k in ks for s in (3, 4, 5)],
        128: [
            (m, n, k, w, s)
            for m in (16, 32)
            for n in (64, 128)
            for k in (ks[0] // 2, ks[0])
            for w in (4, 8)
            for s in (3, 4)
        ],
        2048: [
            (m, n, k, w, 3)
            for m in (64, 128)
            for n in (128, 256)
            for k in (ks[0] // 2, ks[0])
            for w in (4, 8)
        ],
    }
    stages = [
        (st, sk)
        for st, sk in (
            [(1, 1), (1, 2), (2, 1)]
            if args.tune_stages is None
            else [(st, 1) for st in args.tune_stages]
        )
        if (st, sk, "per_expert") in mods  # a scaled dtype has no split-K variant
    ]
    totals: dict = {}
    for inter in args.inters:
        w1 = (torch.randn(E, 2 * inter, D, device="cuda", dtype=dt) * 0.02).to(kdt)
        w2 = (torch.randn(E, D, inter, device="cuda", dtype=dt) * 0.02).to(kdt)
        for tokens in args.tokens:
            topk_ids, topk_w = routing_for(tokens)
            x = torch.randn(tokens, D, device="cuda", dtype=dt).to(kdt)
            a2 = torch.randn(tokens * TOPK, inter, device="cuda", dtype=dt).to(kdt)
            for stage, split_k in stages:
                mod = mods[(stage, split_k, "per_expert")]
                saved = mod.CONFIGS
                for cfg in space[tokens]:
                    mod.CONFIGS = (TileConfig(None, *cfg),)
                    act, wt = (x, w1) if stage == 1 else (a2, w2)
                    try:
                        ms = time_plan(mod, act, wt, topk_ids, topk_w)
                    except Exception as exc:  # a config the compiler rejects (shared memory)
                        print(
                            f"  I={inter} T={tokens} s{stage} k{split_k} {cfg}: {type(exc).__name__}"
                        )
                        continue
                    print(f"  I={inter} T={tokens} s{stage} k{split_k} {cfg}: {ms * 1e3:.1f} us")
                    key = (tokens, stage, split_k)
                    totals.setdefault(key, {}).setdefault(cfg, []).append(ms)
                mod.CONFIGS = saved
        del w1, w2
        torch.cuda.empty_cache()
    n = len(args.inters)
    for (tokens, stage, split_k), by_cfg in sorted(totals.items()):
        full = {c: sum(v) for c, v in by_cfg.items() if len(v) == n}
        m, nn, k, w, s = best = min(full, key=full.get)
        print(
            f"BEST T={tokens} stage {stage} split_k {split_k}: "
            f"{' / '.join(f'{t * 1e3:.1f}' for t in by_cfg[best])} us at inters {args.inters}  "
            f"- {{tokens: {tokens}, m: {m}, n: {nn}, k: {k}, warps: {w}, stages: {s}}}"
        )
        sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="bench/out")
    p.add_argument("--dtype", default="bf16", choices=tuple(TORCH_DTYPES))
    p.add_argument("--inters", default="1280,1408,3072")
    p.add_argument("--tokens", default="16,128,2048")
    p.add_argument("--tune", action="store_true")
    p.add_argument("--tune-stages", default=None, help="e.g. 2: tune only these stages (split_k 1)")
    args = p.parse_args()
    args.inters = [int(v) for v in args.inters.split(",")]
    args.tokens = [int(v) for v in args.tokens.split(",")]
    if args.tune_stages:
        args.tune_stages = [int(v) for v in args.tune_stages.split(",")]
    if args.tune:
        tune(args)
        return
    rows = run(args)
    write(rows, Path(args.out))
    print(f"wrote {args.out}/triton_moe.csv and triton_moe.png")


if __name__ == "__main__":
    main()
