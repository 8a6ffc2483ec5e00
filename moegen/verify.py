"""`moegen verify`: compile every generated kernel at every shape it ships for, and check it.

Users run kernels specialized at their own model_dim and inter (constexprs, baked into the
code), so the kernel compiled at a unit-test shape is not the one that runs in production: an
i32 product such as `expert * (rows * cols)` folds to small constants there and looks bounded.
verify therefore checks every (variant, shape, arch): each variant of variants.yaml (the one
enumeration, moegen.expand.enumerate_variants; a non-default tile is its own variant, so every
declared tile is covered), at every shape under `shapes:` (at least `small` and `production`),
for each arch it declares. Each is compiled on the CPU (FlyDSL COMPILE_ONLY) in its own
subprocess (moegen.compile), N at a time, all shapes in one pool. The compile entry is generic:
a small driver file calls `compile_module`, which builds CPU `torch.empty` operands of the
shape (never touched, so a 9 GiB weight costs nothing), routes them with
moegen.routing.moe_sorting, asks the module's prepare() for its LaunchPlan and calls each
KernelCall's launcher. The expert count is the shape's, or, where the launcher guard refuses
that many (whole_tensor weights past 4 GiB), the most it admits: those are the expert ids the
kernel can ever see at that shape. A (variant, shape, arch) FAILS when

- the compile fails: non-zero exit or signal, `^error:` / `LLVM ERROR` / `UNREACHABLE` on stderr,
  or an ISA lacking buffer loads, the MFMA the dtype declares for the arch (mnemonic derived
  from its op name), or buffer atomics where the variant accumulates (split-K, stage 2);
- the audit (moegen.audit) finds weight addressing (the kernels' 2nd tensor parameter W) other
  than the declared one, or an i32 product widened to i64 that can exceed the i32 range at
  that shape: constexpr dimensions are the shape's constants in the audited code, and runtime
  values are bounded from the same shape (expert ids <= experts - 1, routing values for the
  most tokens the launcher admits, block ids of the real grid); widenings whose range cannot
  be evaluated are warnings;
- a kernel spills registers or uses scratch (private segment size > 0).

Successful compiles are cached under $MOEGEN_CACHE_DIR/verify (moegen.compile.cache_home),
keyed by the driver (module path, shape, dtypes), the arch and moegen.compile.source_fingerprint
of the generated module and of this module (every moegen file either imports, the flydsl
version, FLYDSL_* settings): the generated boundary tests re-verify each variant after `moegen
verify` without compiling again. The audit always re-runs. `--no-cache` compiles everything.

torch-dependent modules (torch, moegen.launch, moegen.routing) are imported where used, so
registering the command keeps `moegen` quick to start.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moegen import address_model
from moegen.audit import KernelAudit, audit_dump_dir
from moegen.compile import (
    CompileResult,
    CompileTarget,
    cache_home,
    compile_target,
    compile_target_cached,
    source_fingerprint,
)
from moegen.errors import SpecError, SpecErrors
from moegen.expand import enumerate_variants
from moegen.spec import Shape, Spec, Variant, load_spec, raise_if
from moegen.toolchain import ToolchainError, rocm_root

EXIT_OK, EXIT_FAIL = 0, 1
SMALL_TOKENS = 32  # tokens of the compile inputs (the spec's shapes do not fix a token count)
REQUIRED_SHAPES = ("small", "production")  # verify needs these under `shapes:`
WEIGHT_PARAM = 1  # the expert weight W is every kernel's 2nd tensor parameter
ENTRY_FUNCTION = "compile_entry"
_DRIVER = '''"""moegen verify compile entry: {variant} for {arch} (written by moegen.verify)."""

from moegen.verify import compile_module


def {entry}() -> None:
    compile_module({params!r})
'''


# ------------------------------------------------------------------------------ compile entry


def _operands(params: Mapping[str, Any]) -> tuple[Any, ...]:
    """CPU torch.empty activations/weights and the routing tensors of one compile."""
    import torch

    from moegen import routing

    e, d, i, t, k = (params[n] for n in ("experts", "model_dim", "inter", "tokens", "topk"))
    act, weight = getattr(torch, params["act_dtype"]), getattr(torch, params["weight_dtype"])
    if params["stage"] == 1:
        a, w = torch.empty(t, d, dtype=act), torch.empty(e, 2 * i, d, dtype=weight)
    else:
        a, w = torch.empty(t * k, i, dtype=act), torch.empty(e, d, i, dtype=weight)
    # Every expert gets rows (distinct experts per token), so every code path is traced.
    topk_ids = (torch.arange(t)[:, None] + torch.arange(k)[None, :]) % e
    topk_weights = torch.full((t, k), 1.0 / k)
    return (a, w, *routing.moe_sorting(topk_ids, topk_weights, e, params["tile_m"]))


def compile_module(params: Mapping[str, Any]) -> None:
    """Compile-entry body (runs in the compile subprocess under COMPILE_ONLY=1): import the
    generated module at params["module"], build its plan for the small shape and call every
    kernel launcher, which traces, lowers and links without running."""
    from moegen import launch

    path = Path(params["module"])
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    plan: launch.LaunchPlan = module.prepare(*_operands(params), topk=params["topk"])
    for call in plan.kernels:
        call.launcher(*call.args, **call.constexprs)


# ------------------------------------------------------------------------ what each must hold


def mfma_pattern(op: str) -> str:
    """Regex for the ISA mnemonic of a rocdl MFMA op name.

    `mfma_f32_16x16x16bf16_1k` -> v_mfma_f32_16x16x16_bf16 (or ..16bf16_1k), `mfma_i32_16x16x32_i8`
    -> v_mfma_i32_16x16x32_i8: LLVM prints an underscore before the operand type and may drop
    the `_1k` suffix.
    """
    m = re.fullmatch(r"mfma_([a-z0-9]+)_(\d+x\d+x\d+)_?([a-z0-9_]+?)(?:_1k)?", op)
    if not m:
        raise ValueError(f"cannot derive an ISA mnemonic from MFMA op {op!r}")
    acc, shape, operands = m.groups()
    return rf"v_mfma_{acc}_{shape}_?{operands}(_1k)?$"


def required_isa(v: Variant, arch: str) -> tuple[str, ...]:
    """Mnemonic patterns every kernel of `v` must contain on `arch`."""
    patterns = ["buffer_load", mfma_pattern(v.dtype.mfma[arch].op)]
    if v.stage == 2 or v.k_batch > 1:  # partial sums meet in memory
        patterns.append("buffer_atomic")
    return tuple(patterns)


def shipped_shapes(spec: Spec) -> list[Shape]:
    """Every shape under `shapes:` (each is a shape variants ship for); ValueError naming the
    spec if `small` or `production` is missing."""
    names = [s.name for s in spec.shapes]
    missing = [n for n in REQUIRED_SHAPES if n not in names]
    if missing:
        raise ValueError(
            f"{spec.path}: verify needs shapes named {', '.join(map(repr, missing))} under "
            f"`shapes:` (found: {', '.join(names) or 'none'}); add them with experts, "
            "model_dim, inter and topk"
        )
    return list(spec.shapes)


def admitted_experts(v: Variant, shape: Shape) -> int:
    """The most experts (<= shape.experts) whose operands the launcher guard of `v` accepts at
    `shape` for a SMALL_TOKENS batch: the shape's count, fewer for a whole_tensor weight past
    4 GiB, 0 if not even one expert's slab is addressable."""
    info = v.runtime_info
    for experts in range(shape.experts, 0, -1):
        p = address_model.Problem(experts, shape.model_dim, shape.inter, SMALL_TOKENS, shape.topk)
        if address_model.addressable(info, p):
            return experts
    return 0


def max_tokens(v: Variant, shape: Shape, experts: int) -> int:
    """The most tokens `v` accepts at `shape` with `experts` experts: every token-dependent
    tensor stays addressable (the weights do not depend on tokens) and the token fits the
    24-bit routing field."""
    from moegen import launch

    p = address_model.Problem(
        experts, shape.model_dim, shape.inter, launch.MAX_TOKENS - 1, shape.topk
    )
    info = v.runtime_info
    return min(
        [launch.MAX_TOKENS - 1]
        + [
            address_model.max_tokens(info, p, s.tensor)
            for s in address_model.spans(info, p)
            if not s.tensor.startswith("w")
        ]
    )


def runtime_bounds(v: Variant, shape: Shape, experts: int) -> dict[str, int]:
    """Maxima of the runtime values the kernel's index math sees at `shape` with `experts`
    experts: values loaded from the routing tensors (an expert id is at most experts - 1),
    and block ids of the launch grid for the most tokens the launcher admits."""
    from moegen import routing

    tokens = max_tokens(v, shape, experts)
    blocks = routing.num_m_blocks(tokens, shape.topk, experts, v.tile_m)
    # grid: (N tiles, M blocks, K slices); stage 1 N = inter, stage 2 N = model_dim
    n_tiles = (shape.inter if v.stage == 1 else shape.model_dim) // v.tile_n
    return {
        "SortedExpertIds": experts - 1,
        "SortedTokenIds": (shape.topk << routing.TOKEN_BITS) | tokens,
        "NumValidIds": blocks * v.tile_m,
        "block_idx.x": n_tiles - 1,
        "block_idx.y": blocks - 1,
        "block_idx.z": v.k_batch - 1,
    }


# -------------------------------------------------------------------------------- one check


@dataclass(frozen=True)
class Check:
    """One (variant, shape, arch): what it must satisfy, where it compiles.

    module: the file defining the kernels (what the driver `target.module` compiles);
    experts: the expert count compiled and bounded (the shape's, or the most the launcher
    admits); bounds: maxima of runtime values for the audit (see runtime_bounds)."""

    variant: Variant
    arch: str
    target: CompileTarget
    bounds: Mapping[str, int]
    shape: Shape
    experts: int
    module: Path

    @property
    def tile(self) -> str:
        v = self.variant
        return f"{v.tile_m}x{v.tile_n}x{v.tile_k}"

    @property
    def shape_cell(self) -> str:
        """The shape's name, with the expert count when the launcher admits fewer."""
        name = self.shape.name
        return name if self.experts == self.shape.experts else f"{name}[E={self.experts}]"

    def describe_shape(self) -> str:
        """E.g. "production (model_dim 6144, inter 3072, experts 128, topk 4)"."""
        s = self.shape
        experts = f"experts {self.experts}"
        if self.experts != s.experts:
            experts += f" (of {s.experts}: the most the launch guard admits)"
        return f"{s.name} (model_dim {s.model_dim}, inter {s.inter}, {experts}, topk {s.topk})"


@dataclass(frozen=True)
class Outcome:
    """The verdict on one (variant, shape, arch); failed iff `problems` is non-empty."""

    check: Check
    compiled: CompileResult
    audits: tuple[KernelAudit, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _compile_params(v: Variant, arch: str, module: Path, shape: Shape, experts: int) -> dict:
    """What the driver's compile_module builds its operands from."""
    return {
        "module": str(module),
        "stage": v.stage,
        "experts": experts,
        "model_dim": shape.model_dim,
        "inter": shape.inter,
        "tokens": SMALL_TOKENS,
        "topk": shape.topk,
        "tile_m": v.tile_m,
        "act_dtype": v.dtype.act_torch[arch],
        "weight_dtype": v.dtype.weight_torch[arch],
    }


def plan_checks(
    spec_path: Path,
    variants: Sequence[Variant],
    archs: Sequence[str],
    work: Path,
    shape_names: Sequence[str] = (),
) -> list[Check]:
    """A Check per variant, shipped shape (kept if in `shape_names`, or all if empty) and
    declared arch (kept if in `archs`, or all if empty), with its driver file written under
    `work`. An unknown shape name, or a shape at which the launcher refuses every expert
    count of a variant, is a ValueError."""
    errors: list[SpecError] = []
    spec = load_spec(spec_path, errors)
    raise_if(errors)
    shapes = shipped_shapes(spec)
    unknown = sorted(set(shape_names) - {s.name for s in shapes})
    if unknown:
        raise ValueError(
            f"no shape named {', '.join(map(repr, unknown))} under `shapes:` in {spec.path} "
            f"(choose from: {', '.join(s.name for s in shapes)})"
        )
    shapes = [s for s in shapes if not shape_names or s.name in shape_names]
    modules = spec_path.parent / "generated"
    checks = []
    for v in variants:
        module = (modules / v.module_relpath).resolve()
        for shape in shapes:
            experts = admitted_experts(v, shape)
            if experts == 0:
                raise ValueError(
                    f"{v.name}: its launcher refuses shape {shape.name!r} even for one expert "
                    f"(see `moegen boundary {v.name}`); fix the shape in {spec.path} or the "
                    "variant's tile/addressing"
                )
            bounds = runtime_bounds(v, shape, experts)
            for arch in v.archs:
                if archs and arch not in archs:
                    continue
                params = _compile_params(v, arch, module, shape, experts)
                base = work / v.name / shape.name / arch
                driver = base / "entry" / f"verify_{v.name}_{shape.name}_{arch}.py"
                driver.parent.mkdir(parents=True, exist_ok=True)
                label = f"{v.name} at {shape.name}"
                text = _DRIVER.format(variant=label, arch=arch, entry=ENTRY_FUNCTION, params=params)
                driver.write_text(text)
                try:
                    required = required_isa(v, arch)
                except ValueError as exc:
                    raise ValueError(f"{v.name} [{arch}]: {exc} (dtype {v.dtype.name})") from None
                target = CompileTarget(driver, ENTRY_FUNCTION, arch, base / "dump", required)
                checks.append(Check(v, arch, target, bounds, shape, experts, module))
    return checks


def cache_key(check: Check) -> str:
    """Names a verify compile: the driver text (module path, shape, dtypes), the arch, and
    the source fingerprints of the generated module and of the driver's code (this module)."""
    driver = Path(check.target.module)
    key = {
        "driver": driver.read_text(),
        "arch": check.arch,
        "kernel": source_fingerprint(check.module),
        "driver_sources": source_fingerprint(driver)["sources"],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return f"{check.variant.name}-{check.shape.name}-{check.arch}-{digest}"


def run_check(check: Check, cache: Path | None = None) -> Outcome:
    """Compile one (variant, shape, arch) (served from `cache` when an identical compile
    succeeded before), then audit and judge what it produced."""
    if cache is None:
        compiled = compile_target(check.target)
    else:
        compiled = compile_target_cached(check.target, cache / cache_key(check))
    problems = list(compiled.problems)
    warnings: list[str] = []
    for k in compiled.kernels:
        if k.spills or k.private_segment_size > 0:
            problems.append(
                f"kernel {k.name} spills: {k.vgpr_spill_count} VGPRs, {k.sgpr_spill_count} "
                f"SGPRs, {k.private_segment_size} bytes of scratch per lane"
            )
    audits: tuple[KernelAudit, ...] = ()
    if compiled.kernels:
        try:
            audits = tuple(
                audit_dump_dir(
                    compiled.target.dump_dir,
                    weight=WEIGHT_PARAM,
                    expected=check.variant.addressing,
                    bounds=check.bounds,
                )
            )
        except ValueError as exc:
            problems.append(f"audit: {exc}")
        if not audits and not problems:
            problems.append("audit found no kernel with both MLIR and ISA dumps")
    at = f"at shape {check.describe_shape()}"
    for a in audits:
        problems += [f"kernel {a.kernel} {at}: {p}" for p in a.problems]
        warnings += [
            f"kernel {a.kernel} {at}: i32 product widened to i64 with an unknown range at "
            f"{h.location}"
            for h in a.hazards
            if h.can_overflow is None
        ]
    return Outcome(check, compiled, audits, tuple(problems), tuple(warnings))


def default_cache() -> Path:
    """Where verify keeps successful compiles: moegen.compile.cache_home() / "verify"."""
    return cache_home() / "verify"


def run_checks(
    checks: Sequence[Check],
    jobs: int,
    on_done: Callable[[Outcome], None],
    cache: Path | None = None,
) -> list[Outcome]:
    """Run the checks `jobs` at a time (every shape in one pool), compiles served from
    `cache` when given; `on_done` sees each as it finishes. Input order kept."""
    rocm_root()  # create the toolchain once, before workers race to
    outcomes: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(checks)))) as pool:
        futures = {pool.submit(run_check, c, cache): i for i, c in enumerate(checks)}
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            on_done(outcomes[futures[future]])
    return [outcomes[i] for i in range(len(checks))]


def assert_verified(name: str, arch: str, spec_path: str | Path) -> None:
    """Compile and audit one (variant, arch) at every shipped shape, as a generated boundary
    test does (compiles come from the verify cache after `moegen verify`); raises
    AssertionError with the report when any shape fails."""
    spec_path = Path(spec_path)
    variants = [v for v in enumerate_variants(spec_path) if v.name == name]
    if not variants:
        raise AssertionError(f"{spec_path} declares no variant {name!r}; run `moegen render`")
    rocm_root()
    with tempfile.TemporaryDirectory(prefix=f"moegen-verify-{name}-") as work:
        checks = plan_checks(spec_path, variants, [arch], Path(work))
        if not checks:
            raise AssertionError(f"{name} does not declare arch {arch}")
        start = time.perf_counter()
        outcomes = [run_check(c, default_cache()) for c in checks]
        if not all(o.ok for o in outcomes):
            raise AssertionError(format_report(outcomes, time.perf_counter() - start))


# ---------------------------------------------------------------------------------- report


def _addressing_cell(o: Outcome) -> str:
    declared = o.check.variant.addressing
    found = {a.addressing.value for a in o.audits}
    if not found:
        return f"- (declared {declared})"
    shown = ",".join(sorted(found))
    return shown if found == {declared} else f"{shown} != {declared} (declared)"


def _hazard_cell(o: Outcome) -> str:
    hazards = [h for a in o.audits for h in a.hazards]
    if not hazards:
        return "none" if o.audits else "-"
    counts = {
        "overflow": sum(h.can_overflow is True for h in hazards),
        "bounded": sum(h.can_overflow is False for h in hazards),
        "unknown": sum(h.can_overflow is None for h in hazards),
    }
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def _registers(o: Outcome) -> tuple[str, str, str, str]:
    ks = o.compiled.kernels
    if not ks:
        return ("-",) * 4

    def cell(values: list[int | None]) -> str:
        return "/".join("-" if x is None else str(x) for x in values)

    spills = [k.vgpr_spill_count + k.sgpr_spill_count + k.private_segment_size for k in ks]
    return (
        cell([k.vgpr_count for k in ks]),
        cell([k.sgpr_count for k in ks]),
        cell([k.agpr_count for k in ks]),
        cell(spills),
    )


def _compile_cell(o: Outcome) -> str:
    if o.compiled.cached:
        return "cached"
    secs = o.compiled.compile_s
    return "-" if secs is None else f"{secs:.2f}"


def format_table(outcomes: Sequence[Outcome]) -> str:
    """The summary table, one row per (variant, arch, shape); a tile column when the rows
    do not all share one tile."""
    with_tile = len({o.check.tile for o in outcomes}) > 1
    header = (
        "variant",
        "arch",
        "shape",
        *(("tile",) if with_tile else ()),
        "compile s",
        "addressing",
        "i32 widenings",
        "VGPR",
        "SGPR",
        "AGPR",
        "spills",
        "result",
    )
    rows = [header]
    for o in outcomes:
        rows.append(
            (
                o.check.variant.name,
                o.check.arch,
                o.check.shape_cell,
                *((o.check.tile,) if with_tile else ()),
                _compile_cell(o),
                _addressing_cell(o),
                _hazard_cell(o),
                *_registers(o),
                "ok" if o.ok else "FAIL",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def format_report(outcomes: Sequence[Outcome], wall_s: float) -> str:
    """The table, then every failure's problems and every warning, then the totals."""
    parts = [format_table(outcomes)]
    failed = [o for o in outcomes if not o.ok]
    for title, items in (
        ("failures", [(o, o.problems) for o in failed]),
        ("warnings", [(o, o.warnings) for o in outcomes if o.warnings]),
    ):
        if items:
            parts.append(f"\n{title}:")
            for o, messages in items:
                parts.append(
                    f"  {o.check.variant.name} [{o.check.arch}] at {o.check.describe_shape()}"
                )
                parts += [f"    - {m}" for m in messages]
    passed = len(outcomes) - len(failed)
    parts.append(f"\n{passed}/{len(outcomes)} passed, {len(failed)} failed; wall {wall_s:.1f} s")
    return "\n".join(parts)


# ------------------------------------------------------------------------------ command line


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
        "--dump-dir",
        metavar="DIR",
        help="keep the compile drivers and IR/ISA dumps here (default: a temporary dir)",
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
    try:
        variants = enumerate_variants(spec_path, args.k or ())
        checks = plan_checks(spec_path, variants, args.arch or (), work, args.shape or ())
        if not checks:
            print("moegen verify: no variant/arch matches the selection", file=sys.stderr)
            return EXIT_FAIL
        cache = None if args.no_cache else default_cache()
        outcomes = run_checks(checks, args.jobs, _progress(len(checks)), cache)
    except SpecErrors as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_FAIL
    except (ToolchainError, ValueError) as exc:
        print(f"moegen verify: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        if not args.dump_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(format_report(outcomes, time.perf_counter() - start))
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAIL


def main(argv: Sequence[str] | None = None) -> int:
    """`moegen verify` as a standalone command (`python -m moegen.verify`)."""
    parser = argparse.ArgumentParser(prog="moegen verify", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
