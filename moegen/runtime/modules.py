"""Import a Python module from its file: the one loader behind the compile entry, the
executors and the CLI (generated modules are files under generated/, not installed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the file `path` as module `name` (default: its stem) and register it in
    sys.modules, so that tracing tools that look a function's module up by name find it."""
    path = Path(path).resolve()
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
