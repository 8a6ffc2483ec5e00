"""The `moegen` command line. Exit codes: 0 ok, 1 validation error / drift / failure, 2 usage."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from moegen.cli import emulate as emulate_cli
from moegen.cli import verify
from moegen.core.vocabulary import EXIT_FAIL, EXIT_OK, GIB
from moegen.render.engine import RenderError
from moegen.spec.errors import Location, SpecError, SpecErrors
from moegen.spec.expand import enumerate_variants
from moegen.spec.model import Variant


def _paths(args) -> tuple[Path, Path, Path]:
    """(spec, templates dir, output dir): templates/ and generated/ sit beside the spec."""
    spec = Path(args.variants)
    root = spec.parent
    out = Path(args.out) if getattr(args, "out", None) else root / "generated"
    return spec, root / "templates", out


def _variants(args) -> list[Variant]:
    return enumerate_variants(args.variants, args.k or ())


def cmd_validate(args) -> int:
    variants = _variants(args)
    print(f"{args.variants}: ok ({len(variants)} variants)")
    return EXIT_OK


def cmd_list(args) -> int:
    variants = _variants(args)
    if args.format == "json":
        rows = [
            {
                "name": v.name,
                **v.params,
                "module": f"generated/{v.module_relpath}",
                "test": f"generated/{v.test_relpath}",
            }
            for v in variants
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    cols = (
        "name",
        "dtype",
        "addressing",
        "stage",
        "split_k",
        "tile",
        "tokens",
        "archs",
        "preferred",
    )
    rows = [
        (
            v.name,
            v.dtype.name,
            v.addressing,
            str(v.stage),
            str(v.split_k),
            f"{v.tile_m}x{v.tile_n}x{v.tile_k}",
            v.tokens_text,
            ",".join(v.archs),
            "yes" if v.preferred else "",
        )
        for v in variants
    ]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    print(f"{len(rows)} variants")
    return EXIT_OK


def cmd_render(args) -> int:
    from moegen.render import write
    from moegen.render.engine import render_all

    t0 = time.perf_counter()
    spec, templates, out = _paths(args)
    variants = _variants(args)
    full = not args.k
    files = render_all(variants, templates, spec, full=full, jobs=args.jobs)
    if args.check:
        diffs = write.check(out, files, full)
        if diffs:
            sys.stdout.write("".join(d if d.endswith("\n") else d + "\n" for d in diffs))
            fix = "moegen render" + (
                f" --variants {args.variants}" if args.variants != "variants.yaml" else ""
            )
            print(
                f"moegen: {len(diffs)} file(s) in {out} are out of date; run `{fix}` and commit the result.",
                file=sys.stderr,
            )
            return EXIT_FAIL
        print(f"{out}: up to date ({len(files)} files, {time.perf_counter() - t0:.2f}s)")
        return EXIT_OK
    report = write.apply(out, files, full)
    for p in report.written:
        print(f"  wrote    {out / p}")
    for p in report.removed:
        print(f"  removed  {out / p}")
    print(f"{out}: {report.summary()} ({len(variants)} variants, {time.perf_counter() - t0:.2f}s)")
    return EXIT_OK


def _production(spec_path: str):
    from moegen.spec.load import load_spec

    errors: list = []
    spec = load_spec(spec_path, errors)
    shapes = {s.name: s for s in spec.shapes} if spec else {}
    if "production" not in shapes:
        raise SpecErrors(
            errors
            or [
                SpecError(
                    Location(spec_path, 1, 1),
                    "no `production` shape under `shapes:`",
                    "declare shapes.production (experts, model_dim, inter, topk)",
                )
            ]
        )
    return shapes["production"]


def cmd_boundary(args) -> int:
    from moegen.core import address_model as am
    from moegen.core import sweep

    variants = {v.name: v for v in enumerate_variants(args.variants)}
    if args.variant not in variants:
        close = ", ".join(
            sorted(n for n in variants if args.variant.split("_")[1:2] == n.split("_")[1:2])
        )
        print(
            f"moegen: unknown variant {args.variant!r}; `moegen list` shows them"
            + (f" (e.g. {close})" if close else ""),
            file=sys.stderr,
        )
        return EXIT_FAIL
    v = variants[args.variant].record
    prod = _production(args.variants)
    experts = args.experts or prod.experts
    model_dim = args.model_dim or prod.model_dim
    print(
        f"{v['name']}: stage {v['stage']}, {v['addressing']}, weight {v['weight_bits']} bits, "
        f"activations {v['act_bits']} bits, split_k {v['split_k']}"
    )
    for label, tokens in sweep.TOKEN_COUNTS.items():
        p = am.Problem(experts, model_dim, prod.inter, tokens, prod.topk)
        print(
            f"\ntensors at E={experts} model_dim={model_dim} inter={prod.inter} "
            f"tokens={tokens} ({label}) topk={prod.topk}:"
        )
        print(am.table(v, p))
        first = am.first_failing_inter(v, experts, model_dim, tokens, prod.topk)
        print(
            f"first inter that cannot be addressed ({label}): {first} "
            f"(inter must be a multiple of {am.inter_granule(v)})"
        )

    print("\nboundary test sweep (generated/tests/test_%s.py):" % v["name"])
    for c in sweep.boundary_cases(
        v, experts=experts, model_dim=model_dim, topk=prod.topk, production_inter=prod.inter
    ):
        verdict = (
            "run: every row within moegen.harness.verdict's bounds"
            if c.addressable
            else "launcher must refuse"
        )
        print(f"  {c.label:<11} {c.id:<28} W {c.weight_bytes / GIB:7.2f} GiB  {verdict}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moegen", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, select=True):
        sp.add_argument(
            "--variants",
            default="variants.yaml",
            metavar="PATH",
            help="the spec (default: ./variants.yaml); templates/ and generated/ sit beside it",
        )
        if select:
            sp.add_argument(
                "-k",
                action="append",
                metavar="GLOB",
                help="only variants whose name matches this fnmatch glob (repeatable)",
            )

    r = sub.add_parser("render", help="render generated/ from variants.yaml")
    common(r)
    r.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if generated/ is stale",
    )
    r.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: generated/ beside the spec)",
    )
    r.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="formatting processes (default: all cores)",
    )
    r.set_defaults(func=cmd_render)

    ls = sub.add_parser("list", help="list the variants and their parameters")
    common(ls)
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=cmd_list)

    b = sub.add_parser("boundary", help="print a variant's 32-bit spans, limit and boundary sweep")
    b.add_argument("variant", metavar="VARIANT")
    common(b, select=False)
    b.add_argument("--experts", type=int, metavar="E", help="default: the production shape's")
    b.add_argument("--model-dim", type=int, metavar="D", help="default: the production shape's")
    b.set_defaults(func=cmd_boundary)

    verify.register(sub)
    emulate_cli.register(sub)

    v = sub.add_parser("validate", help="check variants.yaml and report every problem")
    common(v, select=False)
    v.set_defaults(func=cmd_validate, k=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecErrors as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_FAIL
    except RenderError as exc:
        print(f"moegen: render failed, nothing was written:\n{exc}", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:  # e.g. `moegen list | head`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("moegen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
