"""moegen.execute and `moegen emulate`: every generated variant on the CPU emulator, both archs.

The module fixture compiles all variants x archs once, two subprocesses at a time, into the
user's kernel cache (keyed by the module source, so stale entries are never reused).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
import torch

from moegen import compile as compile_mod
from moegen import execute, launch, routing
from moegen.emulate_cli import register
from moegen.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "flydsl"
VARIANTS = sorted(p.stem for p in GENERATED.glob("moe_*.py"))
ARCHS = ("gfx942", "gfx950")
SMALL = dict(experts=4, model_dim=256, inter=128, tokens=33, topk=2, idle_experts=(1,))
MIN_COS_SIM = 0.999
MAX_EMULATE_S = 5.0

pytestmark = pytest.mark.skipif(
    execute.unavailable_reason("emulator") is not None,
    reason=str(execute.unavailable_reason("emulator")),
)


def _problem(name: str, arch: str, seed: int = 1) -> execute.Problem:
    return execute.make_problem(
        execute.load_module(GENERATED / f"{name}.py"), seed=seed, arch=arch, **SMALL
    )


@pytest.fixture(scope="module")
def small_problems() -> dict[tuple[str, str], execute.Problem]:
    """(variant, arch) -> small problem, with every kernel compiled (2 subprocesses at a time)."""
    problems = {(name, arch): _problem(name, arch) for name in VARIANTS for arch in ARCHS}
    calls = [(call, arch) for (_, arch), p in problems.items() for call in p.plan().kernels]
    execute.compile_calls(calls, jobs=2)
    return problems


def test_all_twelve_variants_are_generated():
    assert len(VARIANTS) == 12
    assert {execute.load_module(GENERATED / f"{n}.py").VARIANT["stage"] for n in VARIANTS} == {1, 2}


def test_small_problem_has_padding_and_an_idle_expert():
    p = _problem("moe_s1_bf16_per_expert_k1", "gfx942")
    ids, _, expert_ids, num_valid = p.sorted_routing
    assert 1 not in p.routed_experts and len(p.routed_experts) == 3
    used = int(num_valid[0])
    assert (ids[:used] >> routing.TOKEN_BITS == SMALL["topk"]).any()  # padding rows inside blocks
    assert 1 not in expert_ids[: used // 16].tolist()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", VARIANTS)
def test_variant_matches_fp32_reference(small_problems, name, arch):
    problem = small_problems[(name, arch)]
    run = execute.emulate(problem.plan(), arch=arch)
    assert run.compile_s < 0.5, "module fixture should have cached the compile"
    assert run.emulate_s < MAX_EMULATE_S
    assert run.stats["mfma"] > 0
    assert 1 - problem.cos_dist(run.result) > MIN_COS_SIM


def test_compiles_are_cached(tmp_path, monkeypatch):
    problem = _problem("moe_s2_bf16_per_expert", "gfx942", seed=3)
    first = execute.emulate(problem.plan(), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*/dump/*/*_reconcile_unrealized_casts.mlir"))) == 1

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cached compile started a subprocess")

    monkeypatch.setattr(compile_mod.subprocess, "run", no_subprocess)
    second = execute.emulate(problem.plan(), cache_dir=tmp_path)
    assert second.compile_s < 0.5
    assert torch.equal(first.result, second.result)
    # a different constexpr (token count -> num_m_blocks) is a different entry
    other = execute.make_problem(problem.module, **{**SMALL, "tokens": 200})
    with pytest.raises(AssertionError, match="started a subprocess"):
        execute.emulate(other.plan(), cache_dir=tmp_path)


def test_run_dispatches_to_the_emulator():
    problem = _problem("moe_s1_fp16_whole_tensor_k2", "gfx950", seed=4)
    result = execute.run(problem.plan(), "emulator", arch="gfx950")
    assert 1 - problem.cos_dist(result) > MIN_COS_SIM


def test_unavailable_rocm_executor_gives_its_reason():
    reason = execute.unavailable_reason("rocm")
    if reason is None:
        pytest.skip("a ROCm GPU is visible here")
    assert "ROCm" in reason or "GPU" in reason
    plan = _problem("moe_s2_fp16_per_expert", "gfx942").plan()
    with pytest.raises(RuntimeError, match="unavailable"):
        execute.run(plan, "rocm")
    with pytest.raises(ValueError, match="unknown executor"):
        execute.unavailable_reason("cuda")


def _big_whole_tensor_operands() -> tuple:
    """Seed shapes at inter=1408: W1 spans 4.13 GiB (lazy torch.empty, never touched)."""
    e, d, inter, tokens, topk = 128, 6144, 1408, 16, 4
    ids, weights = routing.route_to_experts(tokens, topk, [127, 126, 125, 124])
    x = torch.empty(tokens, d, dtype=torch.bfloat16)
    w1 = torch.empty(e, 2 * inter, d, dtype=torch.bfloat16)
    return x, w1, *routing.moe_sorting(ids, weights, e, 16)


def test_guard_refusal_raises_before_compile_or_launch(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("compiled or launched despite the guard")

    monkeypatch.setattr(compile_mod, "compile_target", forbidden)
    monkeypatch.setattr(Emulator, "launch", forbidden)
    module = execute.load_module(GENERATED / "moe_s1_bf16_whole_tensor_k1.py")
    with pytest.raises(ValueError, match="moe_s1_bf16_per_expert_k1"):
        execute.run(module.prepare(*_big_whole_tensor_operands(), topk=4), "emulator")
    with launch.unsafe_skip_address_guards():
        plan = module.prepare(*_big_whole_tensor_operands(), topk=4)
    assert len(plan.kernels) == 1
    with pytest.raises(ValueError, match="2\\*\\*32"):  # the bypass ends with its block
        module.prepare(*_big_whole_tensor_operands(), topk=4)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="moegen")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emulate", *argv, "--generated", str(GENERATED)])
    return args.func(args)


def test_cli_runs_one_case(capsys):
    argv = ["moe_s1_bf16_per_expert_k2", "--inter", "128", "--tokens", "33", "--arch", "gfx950"]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "cos_dist=" in out and "(ok," in out and "wall" in out


def test_cli_only_wgs_compares_covered_outputs(capsys):
    argv = ["moe_s1_bf16_per_expert_k1", "--inter", "128", "--tokens", "33"]
    assert _cli([*argv, "--only-wgs", "1,0", "0,2"]) == 0
    assert "(ok," in capsys.readouterr().out


def test_cli_unknown_variant_and_guard_refusal(capsys):
    assert _cli(["moe_s1_int3_nope", "--inter", "128", "--tokens", "8"]) == 1
    err = capsys.readouterr().err
    assert "unknown variant 'moe_s1_int3_nope'" in err and "moe_s2_fp16_per_expert" in err
    assert "Traceback" not in err
    seed = ["--experts", "128", "--model-dim", "6144", "--topk", "4", "--route", "highest"]
    t0 = time.perf_counter()
    code = _cli(
        ["moe_s1_bf16_whole_tensor_k1", "--inter", "1408", "--tokens", "16", "--lazy", *seed]
    )
    assert code == 1 and time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert "refused:" in err and "per_expert" in err and "Traceback" not in err
