"""Shared fixtures: the mini spec (fixture templates) and the real project files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MINI = Path(__file__).parent / "fixtures" / "mini"


def checkout_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default os.environ) with this checkout first on PYTHONPATH: a `python -m moegen`
    subprocess started elsewhere must run this tree's package, not an installed one."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def mini(tmp_path, monkeypatch) -> Path:
    """A copy of the mini spec + fixture templates in a temp dir, used as the working directory.

    The black cache goes to the temp dir too, so tests never share formatted results."""
    dst = tmp_path / "proj"
    shutil.copytree(MINI, dst)
    monkeypatch.chdir(dst)
    monkeypatch.setenv("MOEGEN_CACHE_DIR", str(tmp_path / "cache"))
    return dst


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the real variants.yaml + templates/ (no generated/), as the working directory."""
    dst = tmp_path / "proj"
    dst.mkdir()
    shutil.copy(ROOT / "variants.yaml", dst / "variants.yaml")
    shutil.copytree(ROOT / "templates", dst / "templates")
    monkeypatch.chdir(dst)
    monkeypatch.setenv("MOEGEN_CACHE_DIR", str(tmp_path / "cache"))
    return dst
