"""`moegen emulate VARIANT`: one generated variant on the CPU emulator vs the fp32 reference.

    moegen emulate moe_s1_bf16_per_expert --inter 3072 --tokens 16 --experts 128 \\
        --model-dim 6144 --topk 4 --route highest --lazy

judges the result against the fp32 reference row by row (moegen.harness.verdict: every (token, slot)
row of stage 1, every token of stage 2, must pass its cos_dist and max-abs-error bounds; the
global cos_dist is printed too) and prints where the time went. On failure it lists the worst
rows with their token, slot, expert and that expert's weight-slab byte offset.

Memory: before allocating anything the case's resident bytes are estimated (weights,
activations, outputs, reference, emulator overhead) and compared with MemAvailable less a
margin; a case that does not fit is refused with the estimate and the flag that shrinks it
(--lazy fills only the routed experts' weight slabs), never OOM-killed.

Exit codes: 0 every row correct; 1 a wrong row, an INCONCLUSIVE verdict (an emulated access
of a checked row depends on whether its buffer offset wraps at 2**32), unknown variant, guard
refusal, not enough memory, compile failure or emulator fault (a message, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from moegen.core.vocabulary import EXIT_FAIL, EXIT_OK, GIB

DEFAULT_GENERATED = Path("generated") / "flydsl"
# Resident bytes besides the tensors: this process with torch, flydsl and the emulator's
# per-batch numpy state (peak RSS measured at 0.40 GiB on a small case, and 0.82 GiB on the
# production shape with --route highest --lazy, whose tensors are 0.43 GiB of that), plus a
# kernel-compile subprocess on a cache miss (~0.5 GiB).
EMULATOR_OVERHEAD_BYTES = 1 * GIB
# Kept free of the estimate: its terms are approximate and other processes also allocate.
MEMORY_MARGIN_FRACTION = 0.15


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `emulate` subcommand to the moegen parser's subparsers."""
    p = subparsers.add_parser(
        "emulate",
        help="run one variant on the CPU emulator and compare with the fp32 reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "variant", metavar="VARIANT", help="a generated module name, e.g. moe_s1_bf16_per_expert"
    )
    p.add_argument("--inter", type=int, required=True, help="expert width (intermediate size)")
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--experts", type=int, default=4, metavar="E")
    p.add_argument("--model-dim", type=int, default=256, metavar="D")
    p.add_argument("--topk", type=int, default=2, metavar="K")
    p.add_argument("--arch", choices=("gfx942", "gfx950"), default="gfx942")
    p.add_argument(
        "--route",
        choices=("random", "highest"),
        default="random",
        help="random experts per token, or the topk highest-numbered ones (largest offsets)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lazy",
        action="store_true",
        help="allocate weights with torch.empty and fill only the routed experts (a case "
        "whose full weights do not fit in memory is refused without it, with the estimate)",
    )
    p.add_argument(
        "--unsafe-no-guard",
        action="store_true",
        help="TEST ONLY: skip the 32-bit offset guards to show what a whole_tensor kernel does",
    )
    p.add_argument(
        "--only-wgs",
        nargs="+",
        metavar="X,Y,Z",
        help="run only these workgroups; the verdict then covers only their outputs (stage 1)",
    )
    p.add_argument(
        "--generated",
        type=Path,
        default=DEFAULT_GENERATED,
        metavar="DIR",
        help=f"where the generated modules are (default: ./{DEFAULT_GENERATED})",
    )
    p.set_defaults(func=cmd_emulate)
    return p


def _fail(message: str) -> int:
    print(f"moegen emulate: {message}", file=sys.stderr)
    return EXIT_FAIL


def _parse_wgs(items: list[str]) -> list[tuple[int, int, int]]:
    wgs = []
    for item in items:
        parts = item.split(",")
        if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"--only-wgs: {item!r} is not X[,Y[,Z]] with non-negative integers")
        wgs.append(tuple(int(p) for p in parts) + (0,) * (3 - len(parts)))
    return wgs


@dataclass(frozen=True)
class MemoryEstimate:
    """Resident bytes one `moegen emulate` case needs, by what holds them."""

    weights: int  # the weight slabs that hold data (all experts, or the routed ones with --lazy)
    working: int  # activations, outputs, split-K partials, reference, one fp32 slab at a time
    overhead: int = EMULATOR_OVERHEAD_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.working + self.overhead

    def describe(self) -> str:
        return (
            f"{self.total / GIB:.1f} GiB (weights {self.weights / GIB:.1f} GiB, activations, "
            f"outputs and reference {self.working / GIB:.1f} GiB, emulator "
            f"{self.overhead / GIB:.1f} GiB)"
        )


def estimate_memory(module: ModuleType, args: argparse.Namespace, *, lazy: bool) -> MemoryEstimate:
    """What the case will hold resident, from the shapes alone (nothing is allocated).

    Weights: E slabs, or with lazy at most min(E, tokens * topk) routed slabs (topk with
    --route highest). Working set: activations (+ an fp32 copy for the reference), the fp32
    result and reference, split-K fp32 partials, and one expert's slab in fp32 while the
    weights are generated and the reference reads them.
    """
    import torch

    v = module.VARIANT
    stage1 = v["stage"] == 1
    E, D, inter, T, K = args.experts, args.model_dim, args.inter, args.tokens, args.topk
    w_bytes = torch.empty(0, dtype=getattr(torch, module.WEIGHT_DTYPES[args.arch])).element_size()
    a_bytes = torch.empty(0, dtype=getattr(torch, module.ACT_DTYPES[args.arch])).element_size()
    slab = 2 * inter * D if stage1 else D * inter  # elements of one expert's slab
    filled = E if not lazy else min(E, K if args.route == "highest" else T * K)
    act = T * D if stage1 else T * K * inter
    out = T * K * inter if stage1 else T * D
    partials = T * K * 2 * inter if stage1 and v["split_k"] > 1 else 0
    fp32 = 4
    working = act * (a_bytes + fp32) + (2 * out + partials) * fp32 + slab * fp32
    return MemoryEstimate(filled * slab * w_bytes, working)


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping or OOM)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable line in /proc/meminfo")


def memory_refusal(module: ModuleType, args: argparse.Namespace) -> str | None:
    """Why the case would not fit in memory (with what to do instead), or None if it fits."""
    budget = int(available_bytes() * (1 - MEMORY_MARGIN_FRACTION))
    need = estimate_memory(module, args, lazy=args.lazy)
    if need.total <= budget:
        return None
    msg = (
        f"not enough memory: this case needs about {need.describe()}, but only "
        f"{budget / GIB:.1f} GiB is usable (MemAvailable less {MEMORY_MARGIN_FRACTION:.0%})."
    )
    lazy = estimate_memory(module, args, lazy=True)
    if not args.lazy and lazy.total <= budget:
        return msg + (
            f" Add --lazy: the weight is then torch.empty and only the routed experts' slabs "
            f"are filled, about {lazy.describe()}."
        )
    fewer = "" if args.route == "highest" else "--route highest (fills only topk slabs), or "
    return msg + (
        f" Even with --lazy it does not fit: use {fewer}lower --tokens, --experts, --inter or "
        "--model-dim."
    )


def cmd_emulate(args: argparse.Namespace) -> int:
    """Build the case (if it fits in memory), run it on the emulator, print the per-row
    verdict and timings."""
    from moegen.emulator import EmulatorError
    from moegen.harness import execute
    from moegen.runtime import launch

    module_path = Path(args.generated) / f"{args.variant}.py"
    if not args.variant.isidentifier() or not module_path.is_file():
        known = sorted(p.stem for p in Path(args.generated).glob("moe_*.py"))
        return _fail(
            f"unknown variant {args.variant!r} (no {module_path}); known: "
            + (", ".join(known) or "none -- run `moegen render` first")
        )
    reason = execute.unavailable_reason("emulator")
    if reason:
        return _fail(reason)
    try:
        only_wgs = _parse_wgs(args.only_wgs) if args.only_wgs else None
    except ValueError as exc:
        return _fail(str(exc))

    start = time.perf_counter()
    module = execute.load_module(module_path)
    if args.arch not in module.VARIANT["archs"]:
        return _fail(f"{args.variant} is not declared for {args.arch} ({module.VARIANT['archs']})")
    refusal = memory_refusal(module, args)
    if refusal:
        return _fail(refusal)
    try:
        problem = execute.make_case(
            module,
            experts=args.experts,
            model_dim=args.model_dim,
            inter=args.inter,
            tokens=args.tokens,
            topk=args.topk,
            seed=args.seed,
            route=args.route,
            lazy_weights=args.lazy,
            arch=args.arch,
        )
        if args.unsafe_no_guard:
            with launch.unsafe_skip_address_guards():
                plan = problem.plan()
        else:
            plan = problem.plan()
    except ValueError as exc:
        return _fail(f"refused: {exc}")
    try:
        run = execute.emulate(plan, arch=args.arch, only_wgs=only_wgs)
        verdict = problem.judge(run.result, only_wgs, run.ambiguous_accesses)
    except (execute.CompileFailed, EmulatorError, ValueError) as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
    print(
        f"{args.variant} [{args.arch}] E={args.experts} model_dim={args.model_dim} "
        f"inter={args.inter} tokens={args.tokens} topk={args.topk} route={args.route}: "
        f"cos_dist={verdict.global_cos_dist:.3e} ({verdict.status}, "
        f"{len(verdict.failed_rows)} of {len(verdict.rows)} rows fail)"
    )
    print("  " + verdict.report().replace("\n", "\n  "))
    print(
        f"  compile {run.compile_s:.2f} s, emulate {run.emulate_s:.2f} s, "
        f"wall {time.perf_counter() - start:.2f} s, {run.stats.get('mfma', 0):,} wave-MFMAs"
    )
    return EXIT_OK if verdict.passed else EXIT_FAIL
