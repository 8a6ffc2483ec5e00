"""moegen.harness.execute and `moegen emulate`: every generated variant on the CPU emulator, both archs.

Each (variant, arch) compiles on first use into the user's kernel cache (keyed by the module
source, so stale entries are never reused), before its emulation: under pytest-xdist a module
fixture runs once per worker, so compiling every variant up front made each worker compile all
of them (307 s of setup per worker in CI at 74 variants).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch

from moegen.backends.flydsl import compile as compile_mod
from moegen.backends.flydsl import entry as entry_module
from moegen.harness import execute
from moegen.runtime import launch
from moegen.runtime import routing
from moegen.cli.emulate import register
from moegen.emulator import Emulator

from moegen.spec.expand import enumerate_variants

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "flydsl"
VARIANTS = sorted(p.stem for p in GENERATED.glob("moe_*.py"))
ARCHS = ("gfx942", "gfx950")
# Each variant on each arch it declares (a bf16 packed-atomic output exists on gfx950 only).
CASES = [
    (name, arch)
    for name in VARIANTS
    for arch in ARCHS
    if arch in execute.load_module(GENERATED / f"{name}.py").VARIANT["archs"]
]
SMALL = dict(experts=4, model_dim=256, inter=128, tokens=33, topk=2, idle_experts=(1,))
MIN_COS_SIM = 0.999


def _problem(name: str, arch: str, seed: int = 1) -> execute.KernelCase:
    return execute.make_case(
        execute.load_module(GENERATED / f"{name}.py"), seed=seed, arch=arch, **SMALL
    )


@pytest.fixture(scope="module")
def small_problems():
    """(variant, arch) -> small problem with its kernels compiled, on first use."""
    problems: dict[tuple[str, str], execute.KernelCase] = {}

    def get(name: str, arch: str) -> execute.KernelCase:
        if (name, arch) not in problems:
            problem = _problem(name, arch)
            execute.compile_calls([(call, arch) for call in problem.plan().kernels], jobs=1)
            problems[(name, arch)] = problem
        return problems[(name, arch)]

    return get


def test_every_declared_variant_is_generated():
    declared = [v.name for v in enumerate_variants(ROOT / "variants.yaml") if v.backend == "flydsl"]
    assert VARIANTS == sorted(declared)
    assert {execute.load_module(GENERATED / f"{n}.py").VARIANT["stage"] for n in VARIANTS} == {1, 2}


def test_small_problem_has_padding_and_an_idle_expert():
    p = _problem("moe_s1_bf16_per_expert", "gfx942")
    ids, _, expert_ids, num_valid = p.sorted_routing
    assert 1 not in p.routed_experts and len(p.routed_experts) == 3
    used = int(num_valid[0])
    assert (ids[:used] >> routing.TOKEN_BITS == SMALL["topk"]).any()  # padding rows inside blocks
    assert 1 not in expert_ids[: used // 16].tolist()


@pytest.mark.parametrize("name,arch", CASES)
def test_variant_matches_fp32_reference(small_problems, name, arch, monkeypatch):
    """One emulation per variant and arch, judged twice: globally (cos sim) and per row (every
    (token, slot) row of stage 1, every token row of stage 2 within moegen.harness.verdict's
    bounds, on the recipe's data where SiLU is far from linear)."""
    problem = small_problems(name, arch)
    spawned = _count_compiles(monkeypatch)
    run = execute.emulate(problem.plan(), arch=arch)
    assert spawned == [], "the fixture compiled it: the emulation must find it cached"
    assert run.stats["mfma"] > 0
    assert 1 - problem.cos_dist(run.result) > MIN_COS_SIM
    judged = problem.judge(run.result, ambiguous=run.ambiguous_accesses)
    assert judged.passed, judged.report()
    tokens, topk = SMALL["tokens"], SMALL["topk"]
    assert len(judged.rows) == (tokens * topk if problem.module.VARIANT["stage"] == 1 else tokens)


def _count_compiles(monkeypatch) -> list[str]:
    """Record every compile subprocess moegen.backends.flydsl.compile starts (they still run):
    its job file."""
    spawned: list[str] = []
    real_run = compile_mod.subprocess.run

    def run(argv, *args, **kwargs):
        if list(argv[:3]) == [sys.executable, "-m", entry_module.__name__]:
            spawned.append(argv[3])
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(compile_mod.subprocess, "run", run)
    return spawned


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> tuple[Path, execute.KernelCase, Path]:
    """A private kernel cache holding one compile: (cache dir, its problem, its MLIR)."""
    cache = tmp_path_factory.mktemp("kernel_cache")
    problem = _problem("moe_s2_bf16_per_expert", "gfx942", seed=3)
    (mlir,) = execute.compile_calls([(problem.plan().kernels[0], "gfx942")], cache_dir=cache)
    return cache, problem, mlir


def test_compiles_are_cached(warm_cache, monkeypatch):
    cache, problem, mlir = warm_cache
    spawned = _count_compiles(monkeypatch)
    (call,) = problem.plan().kernels
    assert execute.compile_calls([(call, "gfx942")], cache_dir=cache) == [mlir]
    run = execute.emulate(problem.plan(), cache_dir=cache)
    assert spawned == []  # hits start no subprocess
    assert 1 - problem.cos_dist(run.result) > MIN_COS_SIM  # and the cached kernel is right
    # what the kernel is specialized on names a different entry
    key = execute.cache_key(call, "gfx942")
    other = execute.make_case(problem.module, **{**SMALL, "tokens": 200})
    assert execute.cache_key(other.plan().kernels[0], "gfx942") != key  # num_m_blocks
    assert execute.cache_key(call, "gfx950") != key
    monkeypatch.setenv("FLYDSL_COMPILE_OPT_LEVEL", "1")
    assert execute.cache_key(call, "gfx942") != key


def test_editing_a_traced_helper_recompiles(warm_cache, tmp_path, monkeypatch):
    """moegen.backends.flydsl.device is traced into every kernel: after an edit a warm cache must miss
    (new key, one subprocess compile), and the unchanged tree must keep hitting."""
    cache, problem, mlir = warm_cache
    (call,) = problem.plan().kernels
    copy = tmp_path / "moegen"
    shutil.copytree(ROOT / "moegen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(compile_mod, "MOEGEN_DIR", copy)
    spawned = _count_compiles(monkeypatch)
    key = execute.cache_key(call, "gfx942")
    assert execute.compile_calls([(call, "gfx942")], cache_dir=cache) == [mlir]
    assert spawned == []  # an identical tree is the same entry

    helper = copy / "backends/flydsl/device.py"
    helper.write_text(helper.read_text() + "\n# edited helper\n")
    assert execute.cache_key(call, "gfx942") != key
    (fresh,) = execute.compile_calls([(call, "gfx942")], cache_dir=cache)
    assert len(spawned) == 1 and fresh != mlir and fresh.is_file()
    assert execute.compile_calls([(call, "gfx942")], cache_dir=cache) == [fresh]
    assert len(spawned) == 1


def test_run_dispatches_to_the_emulator():
    problem = _problem("moe_s1_fp16_whole_tensor_splitk2", "gfx950", seed=4)
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


def _big_whole_tensor_operands(tile_m: int) -> tuple:
    """Seed shapes at inter=1408: W1 spans 4.13 GiB (lazy torch.empty, never touched).

    Sorted at the kernel's own block size, so the only problem `prepare` can find is the
    address guard's."""
    e, d, inter, tokens, topk = 128, 6144, 1408, 16, 4
    ids, weights = routing.route_to_experts(tokens, topk, [127, 126, 125, 124])
    x = torch.empty(tokens, d, dtype=torch.bfloat16)
    w1 = torch.empty(e, 2 * inter, d, dtype=torch.bfloat16)
    return x, w1, *routing.moe_sorting(ids, weights, e, tile_m)


def test_guard_refusal_raises_before_compile_or_launch(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("compiled or launched despite the guard")

    monkeypatch.setattr(compile_mod, "compile_target", forbidden)
    monkeypatch.setattr(Emulator, "launch", forbidden)
    module = execute.load_module(GENERATED / "moe_s1_bf16_whole_tensor.py")
    with pytest.raises(ValueError, match="moe_s1_bf16_per_expert"):
        execute.run(module.prepare(*_big_whole_tensor_operands(module.TILE_M), topk=4), "emulator")
    with launch.unsafe_skip_address_guards():
        plan = module.prepare(*_big_whole_tensor_operands(module.TILE_M), topk=4)
    assert len(plan.kernels) == 1
    with pytest.raises(ValueError, match="2\\*\\*32"):  # the bypass ends with its block
        module.prepare(*_big_whole_tensor_operands(module.TILE_M), topk=4)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="moegen")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emulate", *argv, "--generated", str(GENERATED)])
    return args.func(args)


def test_cli_runs_one_case(capsys):
    argv = [
        "moe_s1_bf16_per_expert_splitk2",
        "--inter",
        "128",
        "--tokens",
        "33",
        "--arch",
        "gfx950",
    ]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "cos_dist=" in out and "(ok," in out and "wall" in out


def test_cli_only_wgs_compares_covered_outputs(capsys):
    argv = ["moe_s1_bf16_per_expert", "--inter", "128", "--tokens", "33"]
    assert _cli([*argv, "--only-wgs", "1,0", "0,2"]) == 0
    assert "(ok," in capsys.readouterr().out


def test_cli_unknown_variant_and_guard_refusal(capsys):
    assert _cli(["moe_s1_int3_nope", "--inter", "128", "--tokens", "8"]) == 1
    err = capsys.readouterr().err
    assert "unknown variant 'moe_s1_int3_nope'" in err and "moe_s2_fp16_per_expert" in err
    assert "Traceback" not in err
    seed = ["--experts", "128", "--model-dim", "6144", "--topk", "4", "--route", "highest"]
    t0 = time.perf_counter()
    code = _cli(["moe_s1_bf16_whole_tensor", "--inter", "1408", "--tokens", "16", "--lazy", *seed])
    assert code == 1 and time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert "refused:" in err and "per_expert" in err and "Traceback" not in err


def test_emulated_carries_the_emulators_ambiguous_accesses(monkeypatch):
    """execute.emulate hands on what each kernel's Emulator recorded in ambiguous_accesses."""
    from moegen.emulator import AmbiguousAccess

    access = AmbiguousAccess("rocdl.raw.ptr.buffer.load", "k.py:1", (0, 0, 0), 7, 0x8, 2**32 + 8)
    real_launch = Emulator.launch

    def launch_and_record(self, *args, **kwargs):
        real_launch(self, *args, **kwargs)
        self.ambiguous_accesses.append(access)

    monkeypatch.setattr(Emulator, "launch", launch_and_record)
    problem = _problem("moe_s1_bf16_per_expert", "gfx942", seed=5)
    run = execute.emulate(problem.plan(), arch="gfx942")
    assert run.ambiguous_accesses == [access]  # one kernel launch, one access
    assert problem.judge(run.result, ambiguous=run.ambiguous_accesses).status == "INCONCLUSIVE"
