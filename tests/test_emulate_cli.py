"""`moegen emulate`: per-row verdicts that a few wrapped rows cannot hide in, INCONCLUSIVE
when the emulator cannot vouch for a checked row, and a memory estimate before any allocation.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from moegen.cli import emulate as emulate_cli
from moegen.harness import execute
from moegen.harness import verdict
from moegen.emulator import AmbiguousAccess

GENERATED = Path(__file__).resolve().parents[1] / "generated" / "flydsl"
GIB = 2**30


# The reviewer's case (E=128, model_dim=6144, inter=1408, 16 tokens x topk 4, random routing,
# guard bypassed) reads wrapped bytes for the experts past 2**32 and printed cos_dist 7.6e-03,
# "ok". Emulating its full grid takes ~145 s, so this case keeps its property -- random
# routing, W1 just past 4 GiB, a few wrong rows among many good ones -- at a fraction of the
# cost: one bf16 w1 slab is 2 * 512 * 256 * 2 = 524,288 bytes, 2**32 / 524,288 = 8192, so
# experts 8192..8231 (40 of 8232, 0.5 %) start at or past 2**32 and read wrapped bytes; 64
# tokens x topk 4 = 256 rows, 2 of them (seed 0) routed there. Only N block 0 is emulated.
WRAP = dict(experts=8232, model_dim=256, inter=512, tokens=64, topk=4, seed=0)
SLAB = 2 * 512 * 256 * 2
FIRST_WRAPPED = 2**32 // SLAB  # 8192


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="moegen")
    emulate_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emulate", *argv, "--generated", str(GENERATED)])
    return args.func(args)


def _argv(variant: str, case: dict) -> list[str]:
    argv = [variant]
    for key, value in case.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


@pytest.fixture(scope="module")
def wrap_case() -> tuple[execute.KernelCase, list[str]]:
    """The case's problem (for its routing) and the --only-wgs covering every valid M block."""
    module = execute.load_module(GENERATED / "moe_s1_bf16_whole_tensor.py")
    problem = execute.make_case(module, route="random", lazy_weights=True, **WRAP)
    blocks = int(problem.sorted_routing[3][0]) // module.VARIANT["tile_m"]
    return problem, [f"0,{y}" for y in range(blocks)]


def test_a_few_wrapped_rows_among_many_fail_the_case(wrap_case, capsys):
    problem, wgs = wrap_case
    bad = [(t, s, int(problem.topk_ids[t, s])) for t, s in (problem.topk_ids >= 8192).nonzero()]
    assert len(bad) == 2 and 256 - len(bad) == 254  # few wrong rows among many good ones
    argv = [*_argv("moe_s1_bf16_whole_tensor", WRAP), "--route", "random", "--lazy"]
    code = _cli([*argv, "--unsafe-no-guard", "--only-wgs", *wgs])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "(WRONG, 2 of 256 rows fail)" in out
    global_dist = float(out.split("cos_dist=")[1].split()[0])
    assert global_dist < verdict.GLOBAL_COS_DIST_LIMIT  # the seed's metric alone says "ok"
    for t, s, e in bad:  # each wrong row named with its expert and slab offset (>= 2**32)
        assert e >= FIRST_WRAPPED
        assert (
            f"token {t} slot {s}: expert {e} slab @ {e * SLAB:#x} ({e * SLAB / GIB:.2f} GiB)" in out
        )


def test_the_per_expert_twin_passes_the_same_case(wrap_case, capsys):
    """Same data through the 64-bit per-expert base: every one of the 256 rows is right, so
    the failure above is the wrap, not the tolerances."""
    _, wgs = wrap_case
    argv = [*_argv("moe_s1_bf16_per_expert", WRAP), "--route", "random", "--lazy"]
    code = _cli([*argv, "--only-wgs", *wgs])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(ok, 0 of 256 rows fail)" in out


def test_an_ambiguous_access_of_a_checked_row_exits_1_inconclusive(monkeypatch, capsys):
    """The emulator reports an access whose result depends on whether voffset wraps: the
    verdict cannot vouch for the rows of that workgroup, which is not a pass."""
    real = execute.emulate

    def with_ambiguity(plan, **kwargs):
        run = real(plan, **kwargs)
        access = AmbiguousAccess(
            "rocdl.raw.ptr.buffer.load", "k.py:9", (0, 0, 0), 3, 0x40, 2**32 + 0x40
        )
        return dataclasses.replace(run, ambiguous_accesses=[access])

    monkeypatch.setattr(execute, "emulate", with_ambiguity)
    code = _cli(["moe_s1_bf16_per_expert", "--inter", "128", "--tokens", "33"])
    out = capsys.readouterr().out
    assert code == 1
    assert "(INCONCLUSIVE, 0 of " in out and "workgroup (0, 0, 0) lane 3" in out


# ---- memory --------------------------------------------------------------------------------


def _forbid_allocation(monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("the case was built (memory allocated) before the memory check")

    monkeypatch.setattr(execute, "make_case", forbidden)


def test_a_case_larger_than_memory_is_refused_before_allocating(monkeypatch, capsys):
    """E=4096 experts of a bf16 [6144, 6144] slab (72 MiB): 4096 * 72 MiB = 288 GiB of weights.
    With --lazy only the <= 16 * 4 = 64 routed slabs hold data: 64 * 72 MiB = 4.5 GiB."""
    _forbid_allocation(monkeypatch)
    monkeypatch.setattr(emulate_cli, "available_bytes", lambda: 16 * GIB)
    case = dict(experts=4096, model_dim=6144, inter=3072, tokens=16, topk=4)
    code = _cli(_argv("moe_s1_bf16_per_expert", case))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "not enough memory: this case needs about" in err and "(weights 288.0 GiB" in err
    assert "only 13.6 GiB is usable" in err  # 16 GiB less the 15 % margin
    # lazy: 4.5 GiB of slabs + 0.14 GiB (one fp32 slab, 144 MiB; x, out, reference ~2 MiB)
    # + 1.0 GiB emulator overhead = 5.64 GiB
    assert "Add --lazy" in err and "about 5.6 GiB (weights 4.5 GiB" in err


def test_even_lazy_too_large_says_what_else_to_lower(monkeypatch, capsys):
    """2048 tokens x topk 8 route to every one of 4096 experts: --lazy fills them all."""
    _forbid_allocation(monkeypatch)
    monkeypatch.setattr(emulate_cli, "available_bytes", lambda: 16 * GIB)
    case = dict(experts=4096, model_dim=6144, inter=3072, tokens=2048, topk=8)
    code = _cli([*_argv("moe_s1_bf16_per_expert", case), "--lazy"])
    err = capsys.readouterr().err
    assert code == 1 and "(weights 288.0 GiB" in err
    assert "Even with --lazy it does not fit" in err and "--route highest" in err


def test_memory_estimate_by_hand():
    """The issue's OOM case: per_expert k1, E=128, model_dim=6144, inter=3072, 16 x 4, bf16."""
    module = execute.load_module(GENERATED / "moe_s1_bf16_per_expert.py")
    args = argparse.Namespace(
        experts=128, model_dim=6144, inter=3072, tokens=16, topk=4, arch="gfx942", route="random"
    )
    slab = 2 * 3072 * 6144 * 2  # 75,497,472 bytes per expert
    full = emulate_cli.estimate_memory(module, args, lazy=False)
    assert full.weights == 128 * slab == 9 * GIB
    # x bf16 + its fp32 copy, fp32 result + reference [16, 4, 3072], one fp32 slab
    assert full.working == 16 * 6144 * (2 + 4) + 2 * 16 * 4 * 3072 * 4 + 2 * 3072 * 6144 * 4
    assert emulate_cli.estimate_memory(module, args, lazy=True).weights == 64 * slab
    highest = argparse.Namespace(**{**vars(args), "route": "highest"})
    assert emulate_cli.estimate_memory(module, highest, lazy=True).weights == 4 * slab


def test_available_bytes_reads_meminfo():
    assert 0 < emulate_cli.available_bytes() < 2**50


def test_help_documents_the_memory_check(capsys):
    parser = argparse.ArgumentParser(prog="moegen")
    emulate_cli.register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["emulate", "--help"])
    out = capsys.readouterr().out
    assert "MemAvailable" in out and "--lazy" in out and "INCONCLUSIVE" in out
