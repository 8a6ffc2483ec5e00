"""moegen.backends.flydsl.toolchain: the ziglang-backed ld.lld wrapper and the compile-only environment."""

import os
import subprocess
import sys

import pytest

from moegen.backends.flydsl import toolchain


def test_private_root_wrapper_is_created_and_idempotent(tmp_path):
    root = toolchain.create_private_root(tmp_path / "rocm")
    ld_lld = toolchain.linker_path(root)
    assert ld_lld.read_text() == toolchain.wrapper_text()
    assert sys.executable in ld_lld.read_text()
    assert os.access(ld_lld, os.X_OK)
    before = ld_lld.stat()
    assert toolchain.create_private_root(root) == root
    after = ld_lld.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert [p.name for p in ld_lld.parent.iterdir()] == ["ld.lld"]  # no temp files left


def test_stale_wrapper_is_replaced(tmp_path):
    ld_lld = toolchain.linker_path(tmp_path)
    ld_lld.parent.mkdir(parents=True)
    ld_lld.write_text("#!/bin/sh\nexit 1\n")
    toolchain.create_private_root(tmp_path)
    assert ld_lld.read_text() == toolchain.wrapper_text()


def test_wrapper_links_a_real_object(tmp_path):
    """ld.lld >= 18 through the wrapper links a shared object (AMDGPU links: test_compile)."""
    root = toolchain.create_private_root(tmp_path / "rocm")
    version = toolchain.lld_version(toolchain.linker_path(root))
    assert version is not None and version[0] >= toolchain.MIN_LLD_MAJOR
    obj = tmp_path / "k.o"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "x86_64-linux-musl",
            "-c",
            "-x",
            "c",
            "-",
            "-o",
            str(obj),
        ],
        input="int moegen_probe(void) { return 42; }\n",
        text=True,
        check=True,
    )
    out = tmp_path / "k.so"
    proc = subprocess.run(
        [str(toolchain.linker_path(root)), "-shared", str(obj), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_existing_rocm_path_with_working_linker_is_kept(tmp_path):
    root = toolchain.create_private_root(tmp_path / "mine")
    assert toolchain.rocm_root(str(root)) == root


def test_rocm_path_without_linker_falls_back_to_private_root(tmp_path, monkeypatch):
    monkeypatch.setenv(toolchain.ROOT_ENV, str(tmp_path / "private"))
    assert toolchain.rocm_root(str(tmp_path / "empty")) == tmp_path / "private"


def test_missing_ziglang_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(toolchain.ToolchainError, match="pip install ziglang"):
        toolchain.create_private_root(tmp_path)


def test_compile_env_sets_both_arch_variables_and_dumps(tmp_path):
    env = toolchain.compile_env("gfx950", tmp_path, base={"FOO": "1"})
    assert env["ARCH"] == env["FLYDSL_GPU_ARCH"] == "gfx950"
    assert env["COMPILE_ONLY"] == "1" and env["FOO"] == "1"
    assert env["FLYDSL_DUMP_IR"] == "1" and env["FLYDSL_DUMP_DIR"] == str(tmp_path)
    assert toolchain.linker_path(env["ROCM_PATH"]).exists()
    no_dump = toolchain.compile_env("gfx942", base={"FLYDSL_DUMP_IR": "1"})
    assert "FLYDSL_DUMP_IR" not in no_dump


def test_bad_arch_is_rejected():
    with pytest.raises(ValueError, match="gfx942"):
        toolchain.compile_env("mi300")
