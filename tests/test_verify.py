"""moegen verify: real compiles of generated modules, the summary table, and failing variants."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import pytest

from moegen import verify
from moegen.compile import CompileTarget
from moegen.expand import enumerate_variants
from moegen.spec import Shape

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "variants.yaml"
GENERATED = ROOT / "generated" / "flydsl"
KERNELS = Path(__file__).parent / "kernels" / "expert_gemm.py"

# A module that takes the compile process down the way an LLVM fatal error does.
ABORTING_MODULE = '''"""Stands in for a kernel whose compile aborts the interpreter."""

import os


def prepare(*args, **kwargs):
    os.abort()
'''


def table_rows(out: str) -> dict[tuple[str, str], list[str]]:
    """(variant, arch) -> the row's cells, from the printed summary table."""
    rows = {}
    for line in out.split("\n\n")[0].splitlines()[2:]:
        cells = line.split()
        rows[cells[0], cells[1]] = cells
    return rows


@pytest.mark.parametrize(
    "op, mnemonic",
    [
        ("mfma_f32_16x16x16bf16_1k", "v_mfma_f32_16x16x16_bf16"),
        ("mfma_f32_16x16x32_bf16", "v_mfma_f32_16x16x32_bf16"),
        ("mfma_f32_16x16x16f16", "v_mfma_f32_16x16x16_f16"),
        ("mfma_f32_16x16x32_fp8_fp8", "v_mfma_f32_16x16x32_fp8_fp8"),
        ("mfma_i32_16x16x32_i8", "v_mfma_i32_16x16x32_i8"),
    ],
)
def test_mfma_mnemonic_is_derived_from_the_op_name(op, mnemonic):
    pattern = verify.mfma_pattern(op)
    assert re.match(pattern, mnemonic)
    assert not re.match(pattern, mnemonic.replace("16x16", "32x32"))
    assert not re.match(pattern, mnemonic + "_x")


def test_unparsable_mfma_op_is_an_error():
    with pytest.raises(ValueError, match="cannot derive"):
        verify.mfma_pattern("wmma_f32_16x16x16_bf16")


def test_atomics_are_required_where_partial_sums_meet():
    required = {
        v.name: verify.required_isa(v, "gfx942") for v in enumerate_variants(SPEC, ["*bf16*"])
    }
    assert "buffer_atomic" in required["moe_s1_bf16_per_expert_k2"]
    assert "buffer_atomic" in required["moe_s2_bf16_per_expert"]
    assert "buffer_atomic" not in required["moe_s1_bf16_per_expert_k1"]
    assert all("buffer_load" in r for r in required.values())


def test_bounds_come_from_the_production_shape():
    (v,) = enumerate_variants(SPEC, ["moe_s1_bf16_per_expert_k2"])
    shape = Shape("production", experts=128, model_dim=6144, inter=3072, topk=4)
    bounds = verify.production_bounds(v, shape)
    tokens = verify.production_tokens(v, shape)
    # the split-K float32 partials [tokens * topk, 2 * inter] limit the token count
    assert tokens * 4 * 2 * 3072 * 4 < 2**32 <= (tokens + 1) * 4 * 2 * 3072 * 4
    assert bounds["SortedExpertIds"] == 127
    assert bounds["block_idx.x"] == 3072 // 64 - 1 and bounds["block_idx.z"] == 1
    assert (bounds["block_idx.y"] + 1) * 16 == bounds["NumValidIds"] >= tokens * 4


def test_register_adds_the_verify_command():
    parser = argparse.ArgumentParser(prog="moegen")
    verify.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["verify", "-k", "*s2*", "--arch", "gfx950", "--jobs", "3"])
    assert args.func is verify.run
    assert (args.k, args.arch, args.jobs, args.variants) == (
        ["*s2*"],
        ["gfx950"],
        3,
        "variants.yaml",
    )


def test_empty_selection_fails(capsys):
    assert verify.main(["--variants", str(SPEC), "-k", "no_such_variant"]) == 1
    assert "no variant/arch matches" in capsys.readouterr().err


def test_bf16_variants_compile_and_audit_clean_on_gfx942(capsys):
    argv = ["--variants", str(SPEC), "-k", "*bf16*", "--arch", "gfx942", "--jobs", "2"]
    assert verify.main(argv) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    expected = {v.name: v for v in enumerate_variants(SPEC, ["*bf16*"])}
    assert set(rows) == {(name, "gfx942") for name in expected}
    for (name, _), cells in rows.items():
        assert cells[3] == expected[name].addressing  # found == declared
        assert cells[4] == "none"  # no i32 product widened into an address
        assert cells[-2:] == ["0", "ok"]  # no spills
    assert f"{len(expected)}/{len(expected)} passed, 0 failed; wall" in out


def test_failures_are_reported_and_the_others_continue(tmp_path, capsys, monkeypatch):
    """A whole_tensor kernel declared per_expert, and a compile that aborts, fail the run;
    the genuine variant between them still passes."""
    shutil.copy(SPEC, tmp_path / "variants.yaml")
    modules = tmp_path / "generated" / "flydsl"
    modules.mkdir(parents=True)
    whole = (GENERATED / "moe_s2_bf16_whole_tensor.py").read_text()
    (modules / "moe_s2_bf16_whole_tensor.py").write_text(whole)
    (modules / "moe_s2_bf16_per_expert.py").write_text(whole)
    (modules / "moe_s2_fp16_per_expert.py").write_text(ABORTING_MODULE)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    argv = ["--variants", str(tmp_path / "variants.yaml"), "--arch", "gfx942", "--jobs", "2"]
    for name in ("moe_s2_bf16_whole_tensor", "moe_s2_bf16_per_expert", "moe_s2_fp16_per_expert"):
        argv += ["-k", name]
    assert verify.main(argv) == 1
    out = capsys.readouterr().out
    assert "\r\x1b[Kverify 3/3: " in out  # progress line on a TTY
    out = out.rsplit("\r\x1b[K", 1)[1]
    rows = table_rows(out)
    assert rows["moe_s2_bf16_whole_tensor", "gfx942"][-1] == "ok"
    mismatch = rows["moe_s2_bf16_per_expert", "gfx942"]
    assert mismatch[3:6] == ["whole_tensor", "!=", "per_expert"] and mismatch[-1] == "FAIL"
    assert rows["moe_s2_fp16_per_expert", "gfx942"][2:4] == ["-", "-"]
    assert rows["moe_s2_fp16_per_expert", "gfx942"][-1] == "FAIL"
    failures = out.split("failures:")[1]
    assert "declared per_expert but compiled code is whole_tensor" in failures
    assert "killed by SIGABRT" in failures
    assert "1/3 passed, 2 failed" in out


def test_widening_fails_only_when_the_bounds_let_it_overflow(tmp_path):
    """The reference kernel computes e * N * K in i32 before widening it into W's address:
    an unknown range is a warning, a range past 2^31 under the bounds a failure."""
    (variant,) = enumerate_variants(SPEC, ["moe_s2_bf16_per_expert"])
    checks = [
        verify.Check(
            variant,
            "gfx942",
            CompileTarget(KERNELS, "compile_i32_widening", "gfx942", tmp_path / name),
            bounds,
        )
        for name, bounds in (("unknown", {}), ("overflow", {"ExpertIds": 2**20}))
    ]
    unknown, overflow = verify.run_checks(checks, 2, lambda outcome: None)
    assert unknown.ok and len(unknown.warnings) == 1 and "unknown range" in unknown.warnings[0]
    assert verify.format_table([unknown]).splitlines()[2].split()[4:6] == ["1", "unknown"]
    assert not overflow.ok and any("overflows" in p for p in overflow.problems)
    assert verify.format_table([overflow]).splitlines()[2].split()[4:6] == ["1", "overflow"]
