"""moegen.backends.flydsl.compile: isolated compiles of real FlyDSL kernels, failure detection, ISA stats,
and what a compile cache must key on (traced sources, flydsl version and settings)."""

import shutil
from pathlib import Path

import pytest

from moegen.backends.flydsl import compile as compile_mod
from moegen.backends.flydsl.compile import (
    CompileTarget,
    compile_many,
    compile_target,
    compile_target_cached,
    source_fingerprint,
    traced_sources,
)

KERNELS = Path(__file__).parent / "kernels" / "expert_gemm.py"
ROOT = Path(__file__).resolve().parents[1]
GENERATED_MODULE = ROOT / "generated" / "flydsl" / "moe_s1_bf16_per_expert.py"
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


def test_traced_sources_follow_the_imports_of_a_generated_module():
    """The generated module imports moegen.runtime.launch and moegen.backends.flydsl.device (traced into every
    kernel); launch imports address_model and routing. The CLI side is not traced."""
    files = traced_sources(GENERATED_MODULE)
    assert files[0] == GENERATED_MODULE
    moegen = ROOT / "moegen"
    assert {
        moegen / name
        for name in ("__init__.py", "backends/flydsl/device.py", "runtime/launch.py", "core/address_model.py", "runtime/routing.py")
    } <= set(files[1:])
    assert not {moegen / "verify/plan.py", moegen / "cli/main.py", moegen / "render/engine.py"} & set(files)
    # the backend's compile side and the emulator are not part of a kernel either
    assert not [f for f in files if f.is_relative_to(moegen / "emulator")]
    assert moegen / "backends/flydsl/compile.py" not in files


def _package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the moegen package that traced_sources resolves imports in."""
    copy = tmp_path / "moegen"
    shutil.copytree(ROOT / "moegen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(compile_mod, "MOEGEN_DIR", copy)
    return copy


def test_fingerprint_changes_with_a_traced_helper_only(tmp_path, monkeypatch):
    copy = _package_copy(tmp_path, monkeypatch)
    before = source_fingerprint(GENERATED_MODULE)
    assert source_fingerprint(GENERATED_MODULE) == before  # deterministic
    (copy / "verify/plan.py").write_text("# not imported by a kernel module\n")
    assert source_fingerprint(GENERATED_MODULE) == before
    helper = copy / "backends/flydsl/device.py"
    helper.write_text(helper.read_text().replace("def silu(", "def silu(  ", 1))
    after = source_fingerprint(GENERATED_MODULE)
    changed = {k for k in before["sources"] if before["sources"][k] != after["sources"][k]}
    assert changed == {"moegen/backends/flydsl/device.py"}


def test_fingerprint_changes_with_flydsl_version_and_settings(monkeypatch):
    before = source_fingerprint(GENERATED_MODULE)
    monkeypatch.setenv("FLYDSL_DUMP_DIR", "/elsewhere")  # where dumps go: not the code
    assert source_fingerprint(GENERATED_MODULE) == before
    monkeypatch.setenv("FLYDSL_COMPILE_OPT_LEVEL", "1")
    assert source_fingerprint(GENERATED_MODULE)["flydsl_env"] == {"FLYDSL_COMPILE_OPT_LEVEL": "1"}
    monkeypatch.delenv("FLYDSL_COMPILE_OPT_LEVEL")
    monkeypatch.setattr(compile_mod.importlib.metadata, "version", lambda name: "0.0.0-other")
    assert source_fingerprint(GENERATED_MODULE)["flydsl"] == "0.0.0-other"


def test_cached_compile_is_reused_only_after_success(tmp_path, monkeypatch):
    entry = tmp_path / "cache" / "gemm-key"
    target = CompileTarget(KERNELS, "compile_per_expert", "gfx942", tmp_path / "d", REQUIRED)
    first = compile_target_cached(target, entry)
    assert first.ok and not first.cached and (entry / "dump").is_dir()
    broken = CompileTarget(KERNELS, "no_such_entry", "gfx942", tmp_path / "e", REQUIRED)
    failed = compile_target_cached(broken, tmp_path / "cache" / "broken-key")
    assert not failed.ok and not (tmp_path / "cache" / "broken-key").exists()

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cache hit started a compile")

    monkeypatch.setattr(compile_mod.subprocess, "run", no_subprocess)
    hit = compile_target_cached(target, entry)
    assert hit.ok and hit.cached and hit.target.dump_dir == entry / "dump"
    assert [k.name for k in hit.kernels] == [k.name for k in first.kernels] == ["gemm_per_expert_0"]
    assert hit.compile_s == first.compile_s
    # the stored ISA is re-checked against the caller's requirements on every hit
    demanding = CompileTarget(KERNELS, "compile_per_expert", "gfx942", tmp_path / "d", ("v_nope",))
    assert not compile_target_cached(demanding, entry).ok
