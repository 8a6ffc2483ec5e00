"""The seed PR's boundary table (aiter #3812), reproduced on the CPU emulator.

bf16 stage 1, E=128, model_dim=6144, decode (16 tokens, topk 4) routed to the 4 highest experts
(the largest weight offsets), lazily allocated weights (torch.empty, only routed slabs filled),
moegen.harness.verdict's data recipe (pre-activations of a few units),
inter in {1280, 1408, 3072} (W1 = 3.75 / 4.13 / 9.00 GiB), fused (k1) and split-K (k2), for the
per_expert variants and the whole_tensor ones with their launch guard bypassed. Full grids, gfx942.

    python bench/seed_table.py

prints the per-row verdict against the fp32 reference (rows failing of 64, the global
cos_dist, the worst row's cos_dist), wall time and peak RSS of each point.
tests/test_seed_table.py runs the same points (run_point) and asserts the outcome.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from moegen.harness import execute
from moegen.runtime import launch
from moegen.harness import verdict
from moegen.emulator import IllegalAddress

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "flydsl"
SEED = dict(experts=128, model_dim=6144, tokens=16, topk=4, route="highest", lazy_weights=True)
ARCH = "gfx942"  # MI300X, where the seed measured its table
INTERS = (1280, 1408, 3072)
VARIANTS = tuple(
    f"moe_s1_bf16_{addressing}{split}"
    for addressing in ("per_expert", "whole_tensor")
    for split in ("", "_splitk2")
)
W1_BYTES_PER_INTER = 128 * 2 * 6144 * 2


@dataclasses.dataclass(frozen=True)
class Point:
    """One row of the table. verdict is None when the kernel faulted (fault names the error)."""

    variant: str
    inter: int
    verdict: verdict.Verdict | None
    fault: str | None
    wall_s: float  # plan + emulation + post-steps (the compile is cached beforehand)
    peak_rss_mib: float  # peak resident memory while the point ran

    @property
    def correct(self) -> bool:
        """Every (token, slot) row within its bounds, and no ambiguous access."""
        return self.verdict is not None and self.verdict.passed


def problems() -> dict[int, execute.KernelCase]:
    """inter -> the seed case, built once and shared by the four variants (same data)."""
    module = execute.load_module(GENERATED / f"{VARIANTS[0]}.py")
    return {inter: execute.make_case(module, inter=inter, arch=ARCH, **SEED) for inter in INTERS}


def for_variant(problem: execute.KernelCase, variant: str) -> execute.KernelCase:
    """The same case run through another bf16 stage-1 module (same tile_m, so same routing)."""
    return dataclasses.replace(problem, module=execute.load_module(GENERATED / f"{variant}.py"))


def _plan(problem: execute.KernelCase):
    if problem.module.VARIANT["addressing"] == "whole_tensor":
        with launch.unsafe_skip_address_guards():
            return problem.plan()
    return problem.plan()


def precompile(cases: dict[int, execute.KernelCase], jobs: int = 2) -> None:
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


def run_point(problem: execute.KernelCase, variant: str) -> Point:
    """Run one variant on one case (its kernel should already be compiled: see precompile)."""
    problem = for_variant(problem, variant)
    inter = problem.reference.shape[-1]
    _reset_peak_rss()
    start = time.perf_counter()
    try:
        run = execute.emulate(_plan(problem), arch=ARCH)
        judged, fault = problem.judge(run.result, ambiguous=run.ambiguous_accesses), None
    except IllegalAddress as exc:
        judged, fault = None, f"IllegalAddress: {str(exc).splitlines()[0][:80]}"
    return Point(variant, inter, judged, fault, time.perf_counter() - start, _peak_rss_mib())


def main() -> None:
    t0 = time.perf_counter()
    cases = problems()
    print(f"built the 3 cases in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    precompile(cases)
    print(f"compiled {len(VARIANTS) * len(INTERS)} kernels in {time.perf_counter() - t0:.1f} s\n")
    header = (
        f"{'variant':<28} {'inter':>5} {'W1 GiB':>6} {'bad rows':>8} {'cos_dist':>9} "
        f"{'worst row':>9} {'result':<12} {'wall s':>6} {'peak RSS MiB':>12}"
    )
    print(header)
    print("-" * len(header))
    for variant in VARIANTS:
        for inter in INTERS:
            p = run_point(cases[inter], variant)
            v = p.verdict
            shown = (
                f"{len(v.failed_rows):>3} of {len(v.rows):>2} {v.global_cos_dist:9.2e} "
                f"{v.worst_row.cos_dist:9.2e}"
                if v is not None
                else f"{'-':>8} {'-':>9} {'-':>9}"
            )
            status = v.status if v is not None else "FAULT"
            print(
                f"{variant:<28} {inter:>5} {inter * W1_BYTES_PER_INTER / 2**30:>6.2f} {shown} "
                f"{status:<12} {p.wall_s:>6.1f} {p.peak_rss_mib:>12.0f}"
                + (f"  {p.fault}" if p.fault else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
