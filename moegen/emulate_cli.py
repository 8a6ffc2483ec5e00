"""`moegen emulate VARIANT`: one generated variant on the CPU emulator vs the fp32 reference.

    moegen emulate moe_s1_bf16_per_expert_k1 --inter 3072 --tokens 16 --experts 128 \\
        --model-dim 6144 --topk 4 --route highest --lazy

prints the cos_dist of the result against the fp32 reference and where the time went. Exit
codes: 0 correct (cos_dist < --tol), 1 wrong result, unknown variant, guard refusal, compile
failure or emulator fault (a message, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAIL = 0, 1
DEFAULT_GENERATED = Path("generated") / "flydsl"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `emulate` subcommand to the moegen parser's subparsers."""
    p = subparsers.add_parser(
        "emulate",
        help="run one variant on the CPU emulator and compare with the fp32 reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "variant", metavar="VARIANT", help="a generated module name, e.g. moe_s1_bf16_per_expert_k1"
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
        help="allocate weights with torch.empty and fill only the routed experts",
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
        help="run only these workgroups; cos_dist then covers only their outputs (stage 1)",
    )
    p.add_argument(
        "--tol", type=float, default=0.01, help="largest passing cos_dist (default 0.01)"
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


def cmd_emulate(args: argparse.Namespace) -> int:
    """Build the case, run it on the emulator, print cos_dist and timings."""
    from moegen import execute, launch
    from moegen.emulator import EmulatorError

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
    try:
        problem = execute.make_problem(
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
        cos_dist = problem.cos_dist(run.result, only_wgs)
    except (execute.CompileFailed, EmulatorError, ValueError) as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
    ok = cos_dist < args.tol
    print(
        f"{args.variant} [{args.arch}] E={args.experts} model_dim={args.model_dim} "
        f"inter={args.inter} tokens={args.tokens} topk={args.topk} route={args.route}: "
        f"cos_dist={cos_dist:.3e} ({'ok' if ok else 'WRONG'}, tol {args.tol:g})"
    )
    print(
        f"  compile {run.compile_s:.2f} s, emulate {run.emulate_s:.2f} s, "
        f"wall {time.perf_counter() - start:.2f} s, {run.stats.get('mfma', 0):,} wave-MFMAs"
    )
    return EXIT_OK if ok else EXIT_FAIL
