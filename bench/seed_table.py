"""The seed PR's boundary table (aiter #3812), reproduced on the CPU emulator.

bf16 stage 1, E=128, model_dim=6144, decode (16 tokens, topk 4) routed to the 4 highest experts
(the largest weight offsets), lazily allocated weights (torch.empty, only routed slabs filled),
inter in {1280, 1408, 3072} (W1 = 3.75 / 4.13 / 9.00 GiB), fused (k1) and split-K (k2), for the
per_expert variants and the whole_tensor ones with their launch guard bypassed. Full grids, gfx942.

    python bench/seed_table.py

prints cos_dist against the fp32 reference, wall time and peak RSS of each point.
tests/test_seed_table.py runs the same points (run_point) and asserts the outcome.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from moegen import execute, launch
from moegen.emulator import IllegalAddress

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "flydsl"
SEED = dict(experts=128, model_dim=6144, tokens=16, topk=4, route="highest", lazy_weights=True)
ARCH = "gfx942"  # MI300X, where the seed measured its table
INTERS = (1280, 1408, 3072)
VARIANTS = tuple(
    f"moe_s1_bf16_{addressing}_k{k}"
    for addressing in ("per_expert", "whole_tensor")
    for k in (1, 2)
)
PASS_COS_DIST = 0.01
W1_BYTES_PER_INTER = 128 * 2 * 6144 * 2


@dataclasses.dataclass(frozen=True)
class Point:
    """One row of the table. cos_dist is None when the kernel faulted (fault names the error)."""

    variant: str
    inter: int
    cos_dist: float | None
    fault: str | None
    wall_s: float  # plan + emulation + post-steps (the compile is cached beforehand)
    peak_rss_mib: float  # peak resident memory while the point ran

    @property
    def correct(self) -> bool:
        return self.cos_dist is not None and self.cos_dist < PASS_COS_DIST


def problems() -> dict[int, execute.Problem]:
    """inter -> the seed case, built once and shared by the four variants (same data)."""
    module = execute.load_module(GENERATED / f"{VARIANTS[0]}.py")
    return {inter: execute.make_problem(module, inter=inter, arch=ARCH, **SEED) for inter in INTERS}


def for_variant(problem: execute.Problem, variant: str) -> execute.Problem:
    """The same case run through another bf16 stage-1 module (same tile_m, so same routing)."""
    return dataclasses.replace(problem, module=execute.load_module(GENERATED / f"{variant}.py"))


def _plan(problem: execute.Problem):
    if problem.module.VARIANT["addressing"] == "whole_tensor":
        with launch.unsafe_skip_address_guards():
            return problem.plan()
    return problem.plan()


def precompile(cases: dict[int, execute.Problem], jobs: int = 2) -> None:
    """Compile every (variant, inter) kernel up front, `jobs` subprocesses at a time."""
    calls = [
        (call, ARCH)
        for problem in cases.values()
        for variant in VARIANTS
        for call in _plan(for_variant(problem, variant)).kernels
    ]
    execute.compile_calls(calls, jobs=jobs)


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) of this process."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_point(problem: execute.Problem, variant: str) -> Point:
    """Run one variant on one case (its kernel should already be compiled: see precompile)."""
    problem = for_variant(problem, variant)
    inter = problem.reference.shape[-1]
    _reset_peak_rss()
    start = time.perf_counter()
    try:
        run = execute.emulate(_plan(problem), arch=ARCH)
        cos_dist, fault = problem.cos_dist(run.result), None
    except IllegalAddress as exc:
        cos_dist, fault = None, f"IllegalAddress: {str(exc).splitlines()[0][:80]}"
    return Point(variant, inter, cos_dist, fault, time.perf_counter() - start, _peak_rss_mib())


def main() -> None:
    t0 = time.perf_counter()
    cases = problems()
    print(f"built the 3 cases in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    precompile(cases)
    print(f"compiled {len(VARIANTS) * len(INTERS)} kernels in {time.perf_counter() - t0:.1f} s\n")
    header = (
        f"{'variant':<28} {'inter':>5} {'W1 GiB':>6} {'cos_dist':>9} {'result':<8} "
        f"{'wall s':>6} {'peak RSS MiB':>12}"
    )
    print(header)
    print("-" * len(header))
    for variant in VARIANTS:
        for inter in INTERS:
            p = run_point(cases[inter], variant)
            shown = f"{p.cos_dist:9.2e}" if p.cos_dist is not None else f"{'-':>9}"
            verdict = "ok" if p.correct else "WRONG"
            print(
                f"{variant:<28} {inter:>5} {inter * W1_BYTES_PER_INTER / 2**30:>6.2f} {shown} "
                f"{verdict:<8} {p.wall_s:>6.1f} {p.peak_rss_mib:>12.0f}"
                + (f"  {p.fault}" if p.fault else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
