"""moegen.backends: the registry finds a backend by name, and flydsl implements the interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.backends import BACKENDS, get_backend
from moegen.backends.base import Backend
from moegen.spec.expand import enumerate_variants

ROOT = Path(__file__).resolve().parents[1]


def test_every_known_backend_implements_the_interface():
    for name in BACKENDS:
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name
        for template in backend.kernel_templates.values():
            assert (ROOT / "templates" / template).is_file()


def test_an_unknown_backend_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown backend 'cuda'; known backends: flydsl, triton"):
        get_backend("cuda")


def test_paths_and_limits_come_from_the_variant_s_backend():
    (v,) = enumerate_variants(ROOT / "variants.yaml", ["moe_s2_bf16_per_expert"])
    backend = get_backend(v.backend)
    assert v.module_relpath == backend.module_relpath(v.name) == "flydsl/moe_s2_bf16_per_expert.py"
    assert v.module_import == "generated.flydsl.moe_s2_bf16_per_expert"
    assert backend.check_tiles(v) == []
