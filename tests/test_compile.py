"""moegen.compile: isolated compiles of real FlyDSL kernels, failure detection, ISA stats."""

from pathlib import Path

import pytest

from moegen.compile import CompileTarget, compile_many, compile_target

KERNELS = Path(__file__).parent / "kernels" / "expert_gemm.py"
REQUIRED = ("buffer_load", "v_mfma")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("dumps")
    targets = [
        CompileTarget(KERNELS, "compile_per_expert", "gfx942", root / "pe942", REQUIRED),
        CompileTarget(KERNELS, "compile_per_expert", "gfx950", root / "pe950", REQUIRED),
        CompileTarget(KERNELS, "compile_tanh_epilog", "gfx942", root / "tanh", REQUIRED),
        CompileTarget(KERNELS, "no_such_entry", "gfx942", root / "missing", REQUIRED),
    ]
    return dict(zip(("pe942", "pe950", "tanh", "missing"), compile_many(targets, jobs=2)))


@pytest.mark.parametrize("key, arch", [("pe942", "gfx942"), ("pe950", "gfx950")])
def test_good_kernel_compiles_with_stats(results, key, arch):
    r = results[key]
    assert r.ok, r.problems
    k = r.kernel("gemm_per_expert")
    assert k.name == "gemm_per_expert_0"
    assert f"amdgcn-amd-amdhsa--{arch}" in k.isa_path.read_text().replace("unknown-", "-")
    assert 0 < k.vgpr_count <= 512 and 0 < k.sgpr_count <= 112
    assert k.agpr_count == 0 and not k.spills and k.private_segment_size == 0
    assert any(m.startswith("v_mfma") for m in k.mnemonics)
    assert r.compile_s is not None and 0 < r.compile_s < r.wall_s
    assert (r.target.dump_dir / "gemm_per_expert_0").is_dir()


def test_vanished_compute_fails_on_stderr_and_isa(results):
    r = results["tanh"]
    assert r.returncode == 0 and not r.ok  # exits 0: only the checks catch it
    assert any("no libcall available for ftanh" in e for e in r.stderr_errors)
    assert r.kernel("gemm_tanh_epilog").missing_isa == REQUIRED
    assert any("compute lost" in p for p in r.problems)


def test_crashing_entry_reports_exit_status(results):
    r = results["missing"]
    assert not r.ok and r.returncode == 1
    assert any("exited with status 1" in p for p in r.problems)
    assert "no_such_entry" in r.stderr


def test_required_isa_can_be_scoped_per_kernel(tmp_path):
    target = CompileTarget(
        KERNELS,
        "compile_per_expert",
        "gfx942",
        tmp_path / "d",
        {"gemm_per_expert_*": ("v_mfma",), "other_*": ("v_no_such_op",)},
    )
    assert target.requirements_for("gemm_per_expert_0") == ("v_mfma",)
    impossible = CompileTarget(
        KERNELS, "compile_per_expert", "gfx942", tmp_path / "d", ("v_no_such_op",)
    )
    r = compile_target(impossible)
    assert not r.ok and r.kernel("gemm_per_expert").missing_isa == ("v_no_such_op",)


def test_stale_dump_is_cleared_but_foreign_files_are_refused(results, tmp_path):
    stale = tmp_path / "d" / "old_kernel_0"
    stale.mkdir(parents=True)
    (stale / "22_final_isa.s").write_text("garbage")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a FlyDSL dump"):
        compile_target(CompileTarget(KERNELS, "compile_per_expert", "gfx942", tmp_path))
    r = compile_target(CompileTarget(KERNELS, "compile_per_expert", "gfx942", tmp_path / "d"))
    assert r.ok and not stale.exists()
