"""moegen.backends.flydsl.audit (with moegen.verify.isa and .verdicts) on real compiles: addressing verdicts (both archs), conflicts, i32 widenings."""

from pathlib import Path

import pytest

from moegen.backends.flydsl.audit import audit_dump_dir
from moegen.verify.isa import _dests_sources
from moegen.verify.verdicts import Addressing
from moegen.backends.flydsl.compile import CompileTarget, compile_many

KERNELS = Path(__file__).parent / "kernels" / "expert_gemm.py"
CASES = ["per_expert", "whole_tensor", "rsrc_trap", "i32_widening"]
ARCHS = ["gfx942", "gfx950"]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    targets = [
        CompileTarget(KERNELS, f"compile_{case}", arch, root / f"{case}_{arch}", ("buffer_load",))
        for case in CASES
        for arch in ARCHS
    ]
    results = compile_many(targets, jobs=2)
    assert all(r.ok for r in results), [r.problems for r in results]
    return {(c, a): root / f"{c}_{a}" for c in CASES for a in ARCHS}


def audit_one(dump_dir, **kwargs):
    (audit,) = audit_dump_dir(dump_dir, **kwargs)
    return audit


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", ["per_expert", "whole_tensor"])
def test_reference_kernels_classified_by_both_views(dumps, case, arch):
    audit = audit_one(dumps[case, arch], weight="W", expected=case)
    assert audit.ok, audit.problems
    assert audit.addressing == Addressing(case)
    assert [v.addressing for v in audit.views] == [Addressing(case)] * 2
    assert audit.weight_ptr == 1 and audit.weight_name == "W"
    assert audit.hazards == ()


@pytest.mark.parametrize("arch", ARCHS)
def test_weight_named_by_ordinal_or_name_agree(dumps, arch):
    by_name = audit_one(dumps["per_expert", arch], weight="W")
    by_ordinal = audit_one(dumps["per_expert", arch], weight=1)
    assert by_name.views == by_ordinal.views
    # the activations X (pointer #0) are addressed without any expert dependence
    assert audit_one(dumps["per_expert", arch], weight="X").addressing == Addressing.UNDETERMINED


@pytest.mark.parametrize("arch", ARCHS)
def test_dropped_expert_offset_is_not_per_expert(dumps, arch):
    audit = audit_one(dumps["rsrc_trap", arch], weight="W", expected="per_expert")
    assert audit.addressing == Addressing.UNDETERMINED
    assert not audit.ok
    assert "declared per_expert but compiled code is undetermined" in audit.problems


@pytest.mark.parametrize("arch", ARCHS)
def test_whole_tensor_kernel_declared_per_expert_is_reported(dumps, arch):
    audit = audit_one(dumps["whole_tensor", arch], weight=1, expected="per_expert")
    assert not audit.ok
    assert audit.problems == ("declared per_expert but compiled code is whole_tensor",)


def test_view_conflict_is_a_failure(dumps, tmp_path):
    """An ISA that contradicts its MLIR (here: the whole-tensor ISA next to the per-expert
    MLIR) must not pass."""
    src = next(dumps["per_expert", "gfx942"].iterdir())
    mixed = tmp_path / src.name
    mixed.mkdir()
    for f in src.glob("*_reconcile_unrealized_casts.mlir"):
        (mixed / f.name).write_text(f.read_text())
    whole_isa = next(next(dumps["whole_tensor", "gfx942"].iterdir()).glob("*_final_isa.s"))
    (mixed / whole_isa.name).write_text(
        whole_isa.read_text().replace("gemm_whole_tensor_0", "gemm_per_expert_0")
    )
    audit = audit_one(tmp_path, weight=1, expected="per_expert")
    assert audit.addressing == Addressing.UNDETERMINED
    assert audit.problems == ("views disagree: mlir=per_expert, isa=whole_tensor",)


@pytest.mark.parametrize("arch", ARCHS)
def test_i32_product_widened_to_i64_is_flagged(dumps, arch):
    audit = audit_one(dumps["i32_widening", arch], weight="W")
    (hazard,) = audit.hazards
    assert hazard.location.startswith(f"{KERNELS}:")
    line = int(hazard.location.split(":")[1])
    assert "fx.Int64(e * (N * K))" in KERNELS.read_text().splitlines()[line - 1]
    assert "llvm.sext" in hazard.line and "llvm.mul" in hazard.product
    assert any("getelementptr" in s for s in hazard.sinks)
    assert hazard.can_overflow is None and audit.ok  # no bounds: listed, caller decides


def test_widening_range_is_evaluated_from_bounds(dumps):
    d = dumps["i32_widening", "gfx942"]
    small = audit_one(d, weight="W", bounds={"ExpertIds": 127})
    assert small.hazards[0].max_abs == 127 * 64 * 64 and small.hazards[0].can_overflow is False
    big = audit_one(d, weight="W", bounds={"ExpertIds": 2**20})
    assert big.hazards[0].can_overflow is True and not big.ok
    assert any("overflows" in p for p in big.problems)


@pytest.mark.parametrize("arch", ARCHS)
def test_overflow_message_names_the_product_its_operands_and_ranges(dumps, arch):
    """e * (N * K) with N = K = 64: the constant factor is 4096; with expert ids up to 2**20
    the product reaches 2**20 * 4096 = 2**32 > 2**31 - 1."""
    (problem,) = audit_one(
        dumps["i32_widening", arch], weight="W", bounds={"ExpertIds": 2**20}
    ).problems
    assert problem.startswith("i32 product widened to i64 overflows: ")
    assert "llvm.sext" in problem and "llvm.mul" in problem
    assert f"in [0, {2**20}] (loaded from ExpertIds)" in problem
    assert "llvm.mlir.constant(4096 : i32) : i32 in [4096, 4096]" in problem
    assert f"ranges over [0, {2**32}], past the i32 limit {2**31 - 1}" in problem
    assert f"Computed at {KERNELS}:" in problem and "fx.Int64(a) * fx.Int64(b)" in problem


@pytest.mark.parametrize("mnemonic", ["s_mulk_i32", "s_addk_i32"])
def test_k_form_instructions_read_their_destination(mnemonic):
    """`s_mulk_i32 s14, 0x1800` is s14 *= 6144 (LLVM's choice for the production model_dim):
    the expert id in s14 must stay in the taint, or a whole_tensor kernel audits as
    undetermined at the production shape only."""
    dests, sources = _dests_sources(mnemonic, ["s14", "0x1800"])
    assert "s14" in dests and "s14" in sources
    assert "s14" not in _dests_sources("s_mov_b32", ["s14", "0x1800"])[1]


def test_unknown_weight_name_is_an_error(dumps):
    with pytest.raises(ValueError, match="pass its ordinal"):
        audit_dump_dir(dumps["per_expert", "gfx942"], weight="Bias")
