"""Acceptance: the seed PR's boundary table on the CPU emulator (see bench/seed_table.py).

per_expert is correct at every point, every (token, slot) row within moegen.harness.verdict's bounds;
whole_tensor (guard bypassed) is correct below the 4 GiB line (inter 1280) and wrong or
faulting past it (1408, 3072), the wrong rows being those of the experts whose slabs start
past 2**32 bytes. Full grids; about 3 minutes on 2
cores, so the points share one module-scoped compile and one case per inter.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dataclasses

import pytest
import torch

from moegen.harness import execute
from moegen.runtime import launch
from moegen.harness import verdict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("seed_table", ROOT / "bench" / "seed_table.py")
seed_table = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = seed_table  # dataclasses resolve the module by name
_spec.loader.exec_module(seed_table)


@pytest.fixture(scope="module")
def cases() -> dict[int, execute.KernelCase]:
    built = seed_table.problems()
    seed_table.precompile(built)
    return built


def test_cases_route_to_the_highest_experts(cases):
    for inter, problem in cases.items():
        assert problem.routed_experts == [124, 125, 126, 127]
        assert problem.weight.shape == (128, 2 * inter, 6144)


# The split-K variants' points are marked slow (outside CI's `-m "not slow"`: about 3 CPU-minutes
# there); each split-K variant still runs its own generated boundary test across the line.
@pytest.mark.parametrize("inter", seed_table.INTERS)
@pytest.mark.parametrize(
    "variant",
    [pytest.param(v, marks=pytest.mark.slow) if "splitk" in v else v for v in seed_table.VARIANTS],
)
def test_seed_point(cases, variant, inter):
    point = seed_table.run_point(cases[inter], variant)
    past_the_line = inter * seed_table.W1_BYTES_PER_INTER >= 2**32
    if "whole_tensor" in variant and past_the_line:
        assert not point.correct, f"whole_tensor at inter={inter} should corrupt: {point}"
        if point.fault is None:
            # expert e's slab starts at e * slab bytes; those reaching past 2**32 wrap:
            # inter=1408: slab 34,603,008 B, 2**32 / slab = 124.1 -> 124 (partly), 125..127
            slab = 2 * inter * 6144 * 2
            wrapped = {e for e in range(128) if (e + 1) * slab > 2**32}
            failed = {e for r in point.verdict.failed_rows for e in r.key.experts}
            assert point.verdict.status == "WRONG" and failed and failed <= wrapped, failed
    else:
        assert point.fault is None and point.correct, point.verdict.report()


def test_whole_tensor_past_the_line_reads_the_wrapped_bytes():
    """Why whole_tensor is wrong at inter=1408 (W1 4.12 GiB): each lane's byte offset into the
    stored (preshuffled) W1 is taken mod 2**32 by the buffer unit, so expert e reads the stored
    bf16 elements at (e * slab + i) mod 2**31 instead of its own slab (the last dword below
    2**32 reading 0: out of the resource's range). With those
    (lower-addressed) bytes filled with other data, the kernel's output must match, row by row,
    a reference computed from exactly those wrapped elements (unshuffled: a slab is whole
    16-row groups), and fail against the true one."""
    from moegen.runtime import preshuffle, reference

    inter = 1408
    module = execute.load_module(seed_table.GENERATED / "moe_s1_bf16_whole_tensor.py")
    problem = execute.make_case(module, inter=inter, arch=seed_table.ARCH, **seed_table.SEED)
    flat = problem.stored_weight.view(-1)
    slab = 2 * inter * 6144
    routed = problem.routed_experts
    wrapped = {e: (e * slab + torch.arange(slab, dtype=torch.int64)) % 2**31 for e in routed}
    gen = torch.Generator().manual_seed(7)
    for e in routed:  # fill the aliased elements that are not a routed expert's own slab
        alias = wrapped[e][wrapped[e] < min(routed) * slab]
        flat[alias] = verdict.randn((alias.numel(),), gen, verdict.weight_std(6144)).to(flat.dtype)
    with launch.unsafe_skip_address_guards():
        run = execute.emulate(problem.plan(), arch=seed_table.ARCH)
    # The resource's num_records is 0xFFFFFFFF, and the range check is per dword: the last
    # dword below 2**32 (wrapped elements 2**31 - 2 and 2**31 - 1) is out of range and reads 0.
    # (With 16-byte preshuffled loads those two elements feed one column of one expert.)
    read = {e: flat[wrapped[e]].masked_fill(wrapped[e] >= 2**31 - 2, 0) for e in routed}
    slabs = torch.stack(
        [preshuffle.unshuffle_weight(read[e].view(2 * inter, 6144)) for e in routed]
    )
    compact = torch.searchsorted(torch.tensor(routed), problem.topk_ids.long())
    explained = dataclasses.replace(
        problem, reference=reference.stage1(problem.act, slabs, compact)
    )
    assert explained.judge(run.result).passed, explained.judge(run.result).report()
    wrong = problem.judge(run.result, ambiguous=run.ambiguous_accesses)
    assert wrong.status == "WRONG" and len(wrong.failed_rows) == len(wrong.rows) == 64
