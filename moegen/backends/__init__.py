"""Backends: each implements moegen.backends.base.Backend in its own subpackage (in its
module `backend`, which defines BACKEND).

get_backend imports a backend by its name (the way Triton finds its targets), so the generic
pipeline names no backend module and import-linter can hold it to that.
"""

from __future__ import annotations

import importlib

from moegen.backends.base import Backend
from moegen.core.vocabulary import BACKENDS


def get_backend(name: str) -> Backend:
    """The backend variants.yaml calls `name`; KeyError listing the known ones otherwise."""
    if name not in BACKENDS:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    return importlib.import_module(f"{__name__}.{name}.backend").BACKEND
