"""Acceptance: the seed PR's boundary table on the CPU emulator (see bench/seed_table.py).

per_expert is correct at every point; whole_tensor (guard bypassed) is correct below the 4 GiB
line (inter 1280) and wrong or faulting past it (1408, 3072). Full grids; about 3 minutes on 2
cores, so the points share one module-scoped compile and one case per inter.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from moegen import execute, launch

ROOT = Path(__file__).resolve().parents[1]
MAX_POINT_S = 60.0
_spec = importlib.util.spec_from_file_location("seed_table", ROOT / "bench" / "seed_table.py")
seed_table = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = seed_table  # dataclasses resolve the module by name
_spec.loader.exec_module(seed_table)

pytestmark = pytest.mark.skipif(
    execute.unavailable_reason("emulator") is not None,
    reason=str(execute.unavailable_reason("emulator")),
)


@pytest.fixture(scope="module")
def cases() -> dict[int, execute.Problem]:
    built = seed_table.problems()
    seed_table.precompile(built)
    return built


def test_cases_route_to_the_highest_experts(cases):
    for inter, problem in cases.items():
        assert problem.routed_experts == [124, 125, 126, 127]
        assert problem.weight.shape == (128, 2 * inter, 6144)


@pytest.mark.parametrize("inter", seed_table.INTERS)
@pytest.mark.parametrize("variant", seed_table.VARIANTS)
def test_seed_point(cases, variant, inter):
    point = seed_table.run_point(cases[inter], variant)
    assert point.wall_s < MAX_POINT_S
    past_the_line = inter * seed_table.W1_BYTES_PER_INTER >= 2**32
    if "whole_tensor" in variant and past_the_line:
        assert not point.correct, f"whole_tensor at inter={inter} should corrupt: {point}"
    else:
        assert point.fault is None and point.correct, point


def test_whole_tensor_past_the_line_reads_the_wrapped_bytes():
    """Why whole_tensor is wrong at inter=1408 (W1 4.12 GiB): each lane's byte offset
    ((e * 2 * inter + n) * model_dim + k) * 2 is taken mod 2**32 by the buffer unit, so expert e
    reads the bf16 elements at (e * slab + i) mod 2**31 of W1 instead of its own slab. With those
    (lower-addressed) bytes filled with other data, the kernel's output must equal a reference
    computed from exactly those wrapped elements, and differ from the true one."""
    from moegen import reference

    inter = 1408
    module = execute.load_module(seed_table.GENERATED / "moe_s1_bf16_whole_tensor_k1.py")
    problem = execute.make_problem(module, inter=inter, arch=seed_table.ARCH, **seed_table.SEED)
    flat = problem.weight.view(-1)
    slab = 2 * inter * 6144
    routed = problem.routed_experts
    wrapped = {e: (e * slab + torch.arange(slab, dtype=torch.int64)) % 2**31 for e in routed}
    gen = torch.Generator().manual_seed(7)
    for e in routed:  # fill the aliased elements that are not a routed expert's own slab
        alias = wrapped[e][wrapped[e] < min(routed) * slab]
        flat[alias] = (torch.randn(alias.numel(), generator=gen) * 0.05).to(flat.dtype)
    with launch.unsafe_skip_address_guards():
        out = execute.emulate(problem.plan(), arch=seed_table.ARCH).result
    slabs = torch.stack([flat[wrapped[e]].view(2 * inter, 6144) for e in routed])
    compact = torch.searchsorted(torch.tensor(routed), problem.topk_ids.long())
    explained = reference.stage1(problem.act, slabs, compact)
    assert reference.cos_dist(out.float(), explained) < 1e-4
    assert reference.cos_dist(out.float(), problem.reference) > 0.01
