"""Run the planned verify checks: compile each (served from the verify cache when an identical
compile succeeded before), audit its dumps, and judge the outcome."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from moegen.backends import get_backend
from moegen.backends.flydsl import entry as entry_module
from moegen.backends.flydsl.compile import (
    CompileResult,
    compile_target,
    compile_target_cached,
    source_fingerprint,
)
from moegen.backends.flydsl.toolchain import rocm_root
from moegen.core.vocabulary import cache_home
from moegen.spec.expand import enumerate_variants
from moegen.verify.counters import KernelCounters, kernel_counters
from moegen.verify.counters_table import FLOOR_SHAPE, floor_violations
from moegen.verify.plan import SCALE_PARAM, WEIGHT_PARAM, Check, Outcome, plan_checks
from moegen.verify.report import format_report
from moegen.verify.verdicts import KernelAudit


def cache_key(check: Check) -> str:
    """Names a verify compile: the compile entry's job (module path, shape, dtypes), the
    arch, and the source fingerprints of the generated module and of the compile entry."""
    key = {
        "job": check.target.job_data(),
        "arch": check.arch,
        "kernel": source_fingerprint(check.module),
        "entry_sources": source_fingerprint(Path(entry_module.__file__))["sources"],
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
        backend = get_backend(check.variant.backend)
        try:
            audits = tuple(
                backend.audit_dump_dir(
                    compiled.target.dump_dir,
                    weight=WEIGHT_PARAM,
                    expected=check.variant.addressing,
                    bounds=check.bounds,
                )
            )
            if check.variant.dtype.weight_scale is not None:
                audits += _scale_audits(backend, check, compiled.target.dump_dir, audits)
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
    counters: list[KernelCounters] = []
    if compiled.kernels:
        try:
            counters = measure(compiled, check.arch)
        except ValueError as exc:
            problems.append(f"ISA counters: {exc}")
    if check.shape.name == FLOOR_SHAPE:  # floors bound the kernel users run (plan.py)
        floors = dict(check.variant.floors)
        for k in counters:
            problems += [f"{m} {at}" for m in floor_violations(k, floors)]
    return Outcome(check, compiled, audits, tuple(problems), tuple(warnings), tuple(counters))


def _scale_audits(
    backend, check: Check, dump_dir: Path, weight_audits: tuple[KernelAudit, ...]
) -> tuple[KernelAudit, ...]:
    """The weight scale's addressing (per-channel or per-group), audited like the weight (its own buffer
    resource must be rebased per expert in per_expert variants, one resource over all experts
    in whole_tensor ones). Kernel-wide findings (the i32 widenings) stay with the weight's
    audit; the scale's own problems are prefixed with its parameter name."""
    seen = {p for a in weight_audits for p in a.problems}
    out = []
    for a in backend.audit_dump_dir(
        dump_dir,
        weight=SCALE_PARAM,
        expected=check.variant.addressing,
        bounds=check.bounds,
    ):
        own = tuple(f"{SCALE_PARAM}: {p}" for p in a.problems if p not in seen)
        out.append(replace(a, hazards=(), problems=own))
    return tuple(out)


def measure(compiled: CompileResult, arch: str) -> list[KernelCounters]:
    """moegen.verify.counters of every kernel a compile produced, in kernel order."""
    names = [k.name for k in compiled.kernels]
    found: dict[str, KernelCounters] = {}
    for isa_path in sorted({k.isa_path for k in compiled.kernels}):
        for kc in kernel_counters(Path(isa_path).read_text(), arch, WEIGHT_PARAM):
            found[kc.kernel] = kc
    return [found[n] for n in names if n in found]


def default_cache() -> Path:
    """Where verify keeps successful compiles: moegen.backends.flydsl.compile.cache_home() / "verify"."""
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
