"""moegen verify: real compiles of generated modules at every shipped shape, the summary
table, and failing variants (incl. an i32 rebase that only overflows at the production shape)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
from pathlib import Path

import pytest

from moegen.cli import verify as verify_cli
from moegen.verify import plan, run
from moegen.verify import report as verify_report
from moegen.cli.main import main as moegen_main
from moegen.backends.flydsl.compile import CompileResult, CompileTarget
from moegen.spec.expand import enumerate_variants
from moegen.spec.model import Shape

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "variants.yaml"
# FlyDSL's bf16 variants (the Triton ones, named *_triton, have a verify of their own).
BF16 = "*bf16*[!n]"
GENERATED = ROOT / "generated" / "flydsl"
KERNELS = Path(__file__).parent / "kernels" / "expert_gemm.py"

# A module that takes the compile process down the way an LLVM fatal error does.
ABORTING_MODULE = '''"""Stands in for a kernel whose compile aborts the interpreter."""

import os


def prepare(*args, **kwargs):
    os.abort()
'''


PRODUCTION = Shape("production", experts=128, model_dim=6144, inter=3072, topk=4)


def table_rows(out: str) -> dict[tuple[str, str, str], list[str]]:
    """(variant, arch, shape) -> the row's cells, from the printed summary table; the optional
    tile column (printed when the rows' tiles differ) is dropped so that indices stay fixed."""
    lines = out.split("\n\n")[0].splitlines()
    tile_col = lines[0].split().index("tile") if "tile" in lines[0].split() else None
    rows = {}
    for line in lines[2:]:
        cells = line.split()
        if tile_col is not None:
            del cells[tile_col]
        rows[cells[0], cells[1], cells[2]] = cells
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
    pattern = plan.mfma_pattern(op)
    assert re.match(pattern, mnemonic)
    assert not re.match(pattern, mnemonic.replace("16x16", "32x32"))
    assert not re.match(pattern, mnemonic + "_x")


def test_unparsable_mfma_op_is_an_error():
    with pytest.raises(ValueError, match="cannot derive"):
        plan.mfma_pattern("wmma_f32_16x16x16_bf16")


def test_atomics_are_required_where_partial_sums_meet():
    required = {
        v.name: plan.required_isa(v, arch)
        for v in enumerate_variants(SPEC, [BF16])
        for arch in v.archs[:1]  # a bf16 packed-atomic output is declared for gfx950 only
    }
    assert "buffer_atomic_add_f32" in required["moe_s1_bf16_per_expert_splitk2"]
    assert "buffer_atomic_add_f32" in required["moe_s2_bf16_per_expert"]
    assert not any(p.startswith("buffer_atomic") for p in required["moe_s1_bf16_per_expert"])
    # 16-bit outputs: packed atomics where declared, plain 16-bit stores in reduce mode
    assert "buffer_atomic_pk_add_bf16" in required["moe_s2_bf16_per_expert_out_bfloat16"]
    reduce = required["moe_s2_bf16_per_expert_out_bfloat16_reduce"]
    assert "buffer_store_short" in reduce and not any(p.startswith("buffer_atomic") for p in reduce)
    assert all("buffer_load" in r for r in required.values())


def test_bounds_come_from_the_audited_shape():
    (v,) = enumerate_variants(SPEC, ["moe_s1_bf16_per_expert_splitk2"])
    shape = PRODUCTION
    assert plan.admitted_experts(v, shape) == 128  # per_expert: one 75.5 MB slab per offset
    bounds = plan.runtime_bounds(v, shape, 128)
    tokens = plan.max_tokens(v, shape, 128)
    # the split-K float32 partials [tokens * topk, 2 * inter] limit the token count
    assert tokens * 4 * 2 * 3072 * 4 < 2**32 <= (tokens + 1) * 4 * 2 * 3072 * 4
    assert bounds["SortedExpertIds"] == 127
    assert bounds["block_idx.x"] == 3072 // 64 - 1 and bounds["block_idx.z"] == 1
    assert (bounds["block_idx.y"] + 1) * v.tile_m == bounds["NumValidIds"] >= tokens * 4


@pytest.mark.parametrize(
    "name, experts",
    [
        # W1 slab = 2 * 3072 * 6144 * 2 B = 75,497,472 B; 2**32 / that = 56.9 -> 56 experts
        ("moe_s1_bf16_whole_tensor", 56),
        # W2 slab = 6144 * 3072 * 2 B = 37,748,736 B; 2**32 / that = 113.8 -> 113 experts
        ("moe_s2_fp16_whole_tensor", 113),
        ("moe_s2_fp16_per_expert", 128),
    ],
)
def test_expert_ids_are_bounded_by_what_the_launcher_admits(tmp_path, name, experts):
    """A whole_tensor launcher refuses 128 experts at the production shape, so the kernel
    only ever sees the expert ids the guard admits; compile and bounds use that count."""
    (v,) = enumerate_variants(SPEC, [name])
    assert plan.admitted_experts(v, PRODUCTION) == experts
    checks = plan.plan_checks(SPEC, [v], ["gfx942"], tmp_path, ["production"])
    (check,) = checks
    assert check.experts == experts and check.bounds["SortedExpertIds"] == experts - 1
    assert check.target.job["operands"]["experts"] == experts
    reduced = experts != PRODUCTION.experts
    assert check.shape_cell == (f"production[E={experts}]" if reduced else "production")
    assert ("the most the launch guard admits" in check.describe_shape()) == reduced


def test_every_variant_is_planned_at_every_shipped_shape_and_arch(tmp_path):
    variants = enumerate_variants(SPEC, [BF16])
    checks = plan.plan_checks(SPEC, variants, [], tmp_path)
    planned = {(c.variant.name, c.shape.name, c.arch) for c in checks}
    assert planned == {
        (v.name, shape, arch)
        for v in variants
        for shape in ("small", "production")
        for arch in v.archs
    }
    assert len(checks) == len(planned)  # one compile job each
    for c in checks:
        operands = c.target.job["operands"]
        dims = (c.shape.model_dim, c.shape.inter, c.shape.topk)
        assert (operands["model_dim"], operands["inter"], operands["topk"]) == dims
        assert c.target.kind == "prepare" and c.target.entry == "prepare"
        assert c.module == (ROOT / "generated" / c.variant.module_relpath).resolve()
    with pytest.raises(ValueError, match="no shape named 'prod'.*choose from: small, production"):
        plan.plan_checks(SPEC, variants, [], tmp_path, ["prod"])


def test_tile_column_appears_when_tiles_differ(tmp_path):
    """Each declared tile is its own variant (and module); when rows differ in tile the table
    names it, so two tiles of one kernel are told apart."""
    (v,) = enumerate_variants(SPEC, ["moe_s2_bf16_per_expert"])
    (check,) = plan.plan_checks(SPEC, [v], ["gfx942"], tmp_path, ["small"])
    wide = dataclasses.replace(check, variant=dataclasses.replace(v, tile_n=128))

    def outcome(c: plan.Check) -> plan.Outcome:
        compiled = CompileResult(
            c.target, 1, ("exited with status 1",), (), "", "", 0.0, None, None
        )
        return plan.Outcome(c, compiled, (), compiled.problems, ())

    header = verify_report.format_table([outcome(check)]).splitlines()[0].split()
    assert header[:4] == ["variant", "arch", "shape", "compile"]
    table = verify_report.format_table([outcome(check), outcome(wide)]).splitlines()
    assert table[0].split()[:4] == ["variant", "arch", "shape", "tile"]
    m, k = v.tile_m, v.tile_k
    assert [row.split()[3] for row in table[2:]] == [f"{m}x64x{k}", f"{m}x128x{k}"]


def test_register_adds_the_verify_command():
    parser = argparse.ArgumentParser(prog="moegen")
    verify_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["verify", "-k", "*s2*", "--arch", "gfx950", "--jobs", "3", "--shape", "production"]
    )
    assert args.func is verify_cli.run
    assert (args.k, args.arch, args.jobs, args.variants, args.shape, args.no_cache) == (
        ["*s2*"],
        ["gfx950"],
        3,
        "variants.yaml",
        ["production"],
        False,
    )


def test_empty_selection_fails(capsys):
    assert verify_cli.main(["--variants", str(SPEC), "-k", "no_such_variant"]) == 1
    assert "no variant/arch matches" in capsys.readouterr().err


def test_bf16_variants_compile_and_audit_clean_on_gfx942(capsys):
    """Every bf16 variant at every shipped shape (compiles reused from the verify cache when
    `moegen verify` ran on this tree first; the audit always re-runs)."""
    argv = ["--variants", str(SPEC), "-k", BF16, "--arch", "gfx942", "--jobs", "2"]
    assert verify_cli.main(argv) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    expected = {v.name: v for v in enumerate_variants(SPEC, [BF16])}
    shapes = {"small", "production", "production[E=56]", "production[E=113]"}
    # a variant that does not declare gfx942 (a bf16 packed-atomic output) is not compiled for it
    expected = {n: v for n, v in expected.items() if "gfx942" in v.archs}
    assert {(name, arch) for name, arch, _ in rows} == {(name, "gfx942") for name in expected}
    assert len(rows) == 2 * len(expected) and {shape for *_, shape in rows} <= shapes
    # the column after "compile s" (two words in the header, one cell in a row); table_rows
    # drops the tile column that appears when the selected variants differ in tile
    header = [w for w in out.splitlines()[0].split() if w != "tile"]
    addressing = header.index("addressing") - 1
    for (name, _, _), cells in rows.items():
        assert cells[addressing] == expected[name].addressing  # found == declared
        assert cells[addressing + 1] == "none"  # no i32 product widened into an address
        assert cells[-2:] == ["0", "ok"]  # no spills
    n = 2 * len(expected)
    assert f"{n}/{n} passed, 0 failed; wall" in out


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
    argv += ["--shape", "small", "--no-cache"]
    for name in ("moe_s2_bf16_whole_tensor", "moe_s2_bf16_per_expert", "moe_s2_fp16_per_expert"):
        argv += ["-k", name]
    assert verify_cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "\r\x1b[Kverify 3/3: " in out  # progress line on a TTY
    out = out.rsplit("\r\x1b[K", 1)[1]
    rows = table_rows(out)
    assert rows["moe_s2_bf16_whole_tensor", "gfx942", "small"][-1] == "ok"
    mismatch = rows["moe_s2_bf16_per_expert", "gfx942", "small"]
    assert mismatch[4:7] == ["whole_tensor", "!=", "per_expert"] and mismatch[-1] == "FAIL"
    assert rows["moe_s2_fp16_per_expert", "gfx942", "small"][3:5] == ["-", "-"]
    assert rows["moe_s2_fp16_per_expert", "gfx942", "small"][-1] == "FAIL"
    failures = out.split("failures:")[1]
    assert "declared per_expert but compiled code is whole_tensor" in failures
    assert "killed by SIGABRT" in failures
    assert "1/3 passed, 2 failed" in out


def test_widening_fails_only_when_the_bounds_let_it_overflow(tmp_path):
    """The reference kernel computes e * N * K in i32 before widening it into W's address:
    an unknown range is a warning, a range past 2^31 under the bounds a failure."""
    (variant,) = enumerate_variants(SPEC, ["moe_s2_bf16_per_expert"])
    variant = dataclasses.replace(variant, floors=())  # the reference kernel has no K loop
    checks = [
        plan.Check(
            variant,
            "gfx942",
            CompileTarget(KERNELS, "compile_i32_widening", "gfx942", tmp_path / name),
            bounds,
            PRODUCTION,
            128,
            KERNELS,
        )
        for name, bounds in (("unknown", {}), ("overflow", {"ExpertIds": 2**20}))
    ]
    unknown, overflow = run.run_checks(checks, 2, lambda outcome: None)
    assert unknown.ok and len(unknown.warnings) == 1 and "unknown range" in unknown.warnings[0]
    assert verify_report.format_table([unknown]).splitlines()[2].split()[5:7] == ["1", "unknown"]
    assert not overflow.ok and any("overflows" in p for p in overflow.problems)
    assert verify_report.format_table([overflow]).splitlines()[2].split()[5:7] == ["1", "overflow"]


# The reviewer's mutation (FlyDSL HEAD's fp8 rebase): the expert offset multiplied in i32 and
# widened afterwards. In the shipped macro both factors are widened before the multiply.
SAFE_REBASE = "fx.Int64(expert) * fx.Int64({{ rows }} * {{ cols }})"
I32_REBASE = "fx.Int64(expert * ({{ rows }} * {{ cols }}))"
MUTATED = "moe_s1_bf16_per_expert"


def test_i32_rebase_fails_at_the_production_shape_on_both_archs(project_copy, capsys):
    """At `small` the product folds to expert * 65,536 (2 * 128 * 256), at most 3 * 65,536 =
    196,608: bounded, which is why a small-shape-only verify passed it. At `production` the
    constant is 2 * 3072 * 6144 = 37,748,736 and expert ids reach 127: 127 * 37,748,736 =
    4,794,089,472 > 2**31 - 1 = 2,147,483,647, so verify must fail on both archs, naming the
    product, its operands' ranges and the shape."""
    macro = project_copy / "templates" / "flydsl" / "_addressing.j2"
    text = macro.read_text()
    assert text.count(SAFE_REBASE) == 1
    macro.write_text(text.replace(SAFE_REBASE, I32_REBASE))
    assert moegen_main(["render", "-k", MUTATED]) == 0
    module = project_copy / "generated" / "flydsl" / f"{MUTATED}.py"
    assert "fx.Int64(expert * (2 * inter * model_dim))" in module.read_text()
    spec = project_copy / "variants.yaml"
    checks = plan.plan_checks(spec, enumerate_variants(spec, [MUTATED]), [], project_copy / "work")
    outcomes = {
        (o.check.shape.name, o.check.arch): o
        for o in run.run_checks(checks, 2, lambda outcome: None, cache=None)
    }
    assert set(outcomes) == {(s, a) for s in ("small", "production") for a in ("gfx942", "gfx950")}
    for arch in ("gfx942", "gfx950"):
        small = outcomes["small", arch]
        assert small.ok, small.problems
        (hazard,) = [h for a in small.audits for h in a.hazards]
        assert (hazard.can_overflow, hazard.value_range) == (False, (0, 3 * 65536))

        production = outcomes["production", arch]
        assert not production.ok
        (problem,) = production.problems
        assert "i32 product widened to i64 overflows" in problem
        assert "llvm.sext" in problem and "llvm.mul" in problem
        assert "in [0, 127] (loaded from SortedExpertIds)" in problem
        assert "llvm.mlir.constant(37748736 : i32) : i32 in [37748736, 37748736]" in problem
        assert "ranges over [0, 4794089472], past the i32 limit 2147483647" in problem
        assert "production (model_dim 6144, inter 3072, experts 128, topk 4)" in problem
        assert f"{module}:" in problem  # the generated line that computes it
    report = verify_report.format_report(list(outcomes.values()), 0.0)
    assert "2/4 passed, 2 failed" in report
    rows = table_rows(report)
    assert rows[MUTATED, "gfx942", "production"][5:7] == ["1", "overflow"]
    assert rows[MUTATED, "gfx942", "small"][5:7] == ["1", "bounded"]


def test_fp8_i32_rebase_is_flagged_and_the_scale_rebase_bounded(project_copy):
    """Upstream's fp8 rebase, `expert * N * K` in i32 and then widened, in the fp8 variant: its
    W1 offset is in bytes = elements, 2 * 3072 * 6144 = 37,748,736 per expert, so i32 wraps from
    expert 57 on (56 * 37,748,736 < 2**31 - 1 < 57 * 37,748,736) and expert ids reach 127.
    verify flags that product on both archs; the per-channel scale's rebase (its own macro)
    stays 64-bit and adds no hazard."""
    macro = project_copy / "templates" / "flydsl" / "_addressing.j2"
    macro.write_text(macro.read_text().replace(SAFE_REBASE, I32_REBASE))
    fp8 = "moe_s1_fp8_per_expert"
    assert moegen_main(["render", "-k", fp8]) == 0
    text = (project_copy / "generated" / "flydsl" / f"{fp8}.py").read_text()
    assert "fx.Int64(expert * (2 * inter * model_dim))" in text
    assert "fx.Int64(expert) * fx.Int64(2 * inter))" in text  # the scale's, untouched
    spec = project_copy / "variants.yaml"
    variants = enumerate_variants(spec, [fp8])
    checks = plan.plan_checks(spec, variants, [], project_copy / "work", ["production"])
    outcomes = run.run_checks(checks, 2, lambda outcome: None, cache=None)
    assert {o.check.arch for o in outcomes} == {"gfx942", "gfx950"}
    for o in outcomes:
        assert not o.ok
        (problem,) = o.problems
        assert "i32 product widened to i64 overflows" in problem
        assert "in [0, 127] (loaded from SortedExpertIds)" in problem
        assert "llvm.mlir.constant(37748736 : i32) : i32 in [37748736, 37748736]" in problem
        (hazard,) = [h for a in o.audits for h in a.hazards]
        assert hazard.can_overflow is True and hazard.value_range == (0, 127 * 37748736)
