"""The package's layers (import-linter contracts in pyproject.toml) hold, and a forbidden import
breaks them: `lint-imports` is the check CI runs, so it must be able to fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the contracts' names (tomllib is 3.11+; each name is one `name = "..."` line)
CONTRACTS = re.findall(
    r'^name = "(.*)"$',
    (ROOT / "pyproject.toml").read_text().partition("[tool.importlinter]")[2],
    re.M,
)
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    if not Path(LINT_IMPORTS).is_file():
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' (import-linter)")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("moegen", "generated"):
        shutil.copytree(ROOT / name, tree / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_contract(tmp_path):
    r = _lint(_copy(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        (
            "moegen/spec/model.py",
            "from moegen.backends.flydsl import limits",
            "spec, core and render never import a backend",
        ),
        ("moegen/core/address_model.py", "import torch", "core imports no torch and no DSL"),
        ("moegen/runtime/launch.py", "from moegen.cli import main", "nothing imports the command line"),
        (
            "generated/flydsl/moe_s2_bf16_per_expert.py",
            "from moegen.harness import execute",
            "generated kernel modules import only moegen.runtime",
        ),
        (
            "moegen/emulator/memory.py",
            "from moegen.core import address_model",
            "the emulator imports nothing of the generator",
        ),
    ],
)
def test_a_planted_forbidden_import_fails_lint_imports(tmp_path, module, line, contract):
    tree = _copy(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # planted\n")
    r = _lint(tree)
    assert r.returncode != 0, r.stdout
    text = " ".join(r.stdout.split())  # long contract names wrap
    assert "1 broken" in text, r.stdout
    name = next(c for c in CONTRACTS if c.startswith(contract))
    assert f"{name} BROKEN" in text, r.stdout
