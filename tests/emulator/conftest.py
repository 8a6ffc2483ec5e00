"""Compile the test kernels once per session and arch (subprocess), cache the MLIR dumps.
A missing hard dependency (deps.py) fails every test that needs the dumps."""

import subprocess
import sys
from pathlib import Path

import pytest

from deps import require
from moegen.backends.flydsl.toolchain import compile_env

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def dumps(tmp_path_factory):
    """arch -> directory of <spec>.mlir dumps (compiled on first use)."""
    require()
    cache: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            out = tmp_path_factory.mktemp(f"dumps_{arch}")
            env = compile_env(arch)  # the project's linker (moegen.backends.flydsl.toolchain), no ROCm needed
            subprocess.run(
                [sys.executable, str(HERE / "compile_dumps.py"), arch, str(out)],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            cache[arch] = out
        return cache[arch]

    return get
