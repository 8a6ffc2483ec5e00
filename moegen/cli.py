"""The `moegen` command line. Exit codes: 0 ok, 1 validation error / drift / failure, 2 usage."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import SpecErrors
from .expand import enumerate_variants
from .render import RenderError
from .spec import Variant

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


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
        "archs",
        "preferred",
    )
    rows = [
        (
            v.name,
            v.dtype.name,
            v.addressing,
            str(v.stage),
            str(v.k_batch),
            f"{v.tile_m}x{v.tile_n}x{v.tile_k}",
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
    from . import write
    from .render import render_all

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
    except KeyboardInterrupt:
        print("moegen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
