"""`moegen verify`: compile every variant at every shipped shape per arch, audit it, report,
and write or check the ISA counters table generated/ISA_COUNTERS.md (moegen.verify.plan / run /
report / counters_table do the work)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from moegen.backends.flydsl.toolchain import ToolchainError
from moegen.backends import get_backend
from moegen.core.vocabulary import DEFAULT_BACKEND, EXIT_FAIL, EXIT_OK
from moegen.spec.errors import SpecErrors
from moegen.spec.expand import enumerate_variants
from moegen.verify.counters_table import (
    REFRESH,
    TABLE_NAME,
    Row,
    expected_text,
    make_row,
    stale_diff,
)
from moegen.verify.plan import Outcome, plan_checks
from moegen.verify.report import format_report
from moegen.verify.run import default_cache, run_checks


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `moegen verify`."""
    p.add_argument(
        "--variants",
        default="variants.yaml",
        metavar="PATH",
        help="the spec (default: ./variants.yaml); generated/ sits beside it",
    )
    p.add_argument(
        "-k",
        action="append",
        metavar="GLOB",
        help="only variants whose name matches this fnmatch glob (repeatable)",
    )
    p.add_argument(
        "--arch",
        action="append",
        metavar="ARCH",
        help="only this arch (repeatable; default: every arch a variant declares)",
    )
    p.add_argument(
        "--shape",
        action="append",
        metavar="NAME",
        help="only this shape of `shapes:` (repeatable; default: every shape)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="compile processes at a time (default: CPU count)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="compile everything afresh (default: reuse successful compiles of identical "
        "sources from $MOEGEN_CACHE_DIR/verify)",
    )
    p.add_argument(
        "--write-counters",
        action="store_true",
        help=f"write the ISA counters measured into generated/{TABLE_NAME} (default: fail "
        "with a diff when it differs from them; -k/--arch/--shape narrow both to the rows "
        "measured)",
    )
    p.add_argument(
        "--dump-dir",
        metavar="DIR",
        help="keep the IR/ISA dumps here (default: a temporary dir)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `verify` to the `moegen` command line."""
    p = subparsers.add_parser(
        "verify",
        help="compile every variant at every shipped shape per arch and audit its addressing, "
        "i32 math and registers",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def _progress(total: int) -> Callable[[Outcome], None]:
    """A \\r-updated progress line on a TTY; silent otherwise."""
    done = 0

    def show(o: Outcome) -> None:
        nonlocal done
        done += 1
        if sys.stdout.isatty():
            c = o.check
            label = f"{c.variant.name} [{c.arch}] {c.shape_cell} {'ok' if o.ok else 'FAIL'}"
            end = "\r\033[K" if done == total else ""
            print(f"\r\033[Kverify {done}/{total}: {label}", end=end, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    """Run `moegen verify` for parsed arguments; returns the exit code."""
    start = time.perf_counter()
    spec_path = Path(args.variants)
    work = Path(args.dump_dir) if args.dump_dir else Path(tempfile.mkdtemp(prefix="moegen-verify-"))
    others_ok, others_report = True, []
    try:
        variants = enumerate_variants(spec_path, args.k or ())
        # Backends with a verify of their own (Triton) run theirs; FlyDSL's is the plan below.
        for name in sorted({v.backend for v in variants} - {DEFAULT_BACKEND}):
            ok, text = get_backend(name).verify_variants(
                [v for v in variants if v.backend == name],
                archs=args.arch or (),
                shapes=args.shape or (),
                work=work / name,
                jobs=args.jobs,
            )
            others_ok &= ok
            others_report.append(text)
        variants = [v for v in variants if v.backend == DEFAULT_BACKEND]
        checks = plan_checks(spec_path, variants, args.arch or (), work, args.shape or ())
        if not checks and not others_report:
            print("moegen verify: no variant/arch matches the selection", file=sys.stderr)
            return EXIT_FAIL
        cache = None if args.no_cache else default_cache()
        outcomes = run_checks(checks, args.jobs, _progress(len(checks)), cache) if checks else []
    except SpecErrors as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_FAIL
    except (ToolchainError, ValueError) as exc:
        print(f"moegen verify: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        if not args.dump_dir:
            shutil.rmtree(work, ignore_errors=True)
    for text in others_report:
        print(text)
    if outcomes:
        print(format_report(outcomes, time.perf_counter() - start))
    fresh = _counters_table(args, spec_path, outcomes)
    return EXIT_OK if fresh and others_ok and all(o.ok for o in outcomes) else EXIT_FAIL


def counter_rows(outcomes: Sequence[Outcome]) -> list[Row]:
    """The counters table rows of every outcome that measured its kernels."""
    rows = []
    for o in outcomes:
        c = o.check
        for k in o.counters:
            name = c.variant.name if len(o.counters) == 1 else f"{c.variant.name} ({k.kernel})"
            rows.append(make_row(name, c.shape_cell, c.arch, c.tile, k))
    return rows


def _counters_table(args: argparse.Namespace, spec_path: Path, outcomes: Sequence[Outcome]) -> bool:
    """Write (--write-counters) or check generated/ISA_COUNTERS.md; False when it is stale."""
    path = spec_path.parent / "generated" / TABLE_NAME
    narrowed = [x for g in args.k or () for x in ("-k", g)]
    narrowed += [x for a in args.arch or () for x in ("--arch", a)]
    narrowed += [x for s in args.shape or () for x in ("--shape", s)]
    planned = {(o.check.variant.name, o.check.shape_cell, o.check.arch) for o in outcomes}
    expected = expected_text(path, counter_rows(outcomes), None if narrowed else planned)
    diff = stale_diff(path, expected)
    if args.write_counters:
        if diff:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected, encoding="utf-8")
        print(f"{path}: {'written' if diff else 'up to date'}")
        return True
    if diff:
        print(diff, end="")
        spec = [] if args.variants == "variants.yaml" else ["--variants", args.variants]
        command = " ".join([REFRESH, shlex.join(spec + narrowed)]).rstrip()
        print(
            f"moegen verify: {path} differs from the ISA counters measured (diff above); "
            f"review the change and refresh it with `{command}`",
            file=sys.stderr,
        )
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """`moegen verify` as a standalone command (`python -m moegen.cli.verify`)."""
    parser = argparse.ArgumentParser(prog="moegen verify", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
