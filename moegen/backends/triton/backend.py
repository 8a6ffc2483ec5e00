"""The Triton backend's implementation of moegen.backends.base.Backend.

Importing it stays cheap (no torch, no triton): BACKEND's methods import the modules that need
them when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from moegen.backends.base import Backend


class Triton(Backend):
    name = "triton"
    title = "Triton"
    kernel_templates = {1: "triton/moe_stage1.py.j2", 2: "triton/moe_stage2.py.j2"}
    device_module = "moegen.backends.triton.device"
    vendors = ("amd", "nvidia")
    dtype_tables = ("torch_dtype",)  # tl.dot picks the MMA: no per-arch MFMA table
    tile_configs = True
    test_template = "tests/test_triton_boundary.py.j2"

    def check_tiles(self, variant: Any) -> list[str]:
        from moegen.backends.triton.limits import check_tiles

        return check_tiles(variant)

    def compile_many(self, targets: Iterable[Any], jobs: int | None = None) -> list[Any]:
        from moegen.backends.triton.compile import compile_many

        return compile_many(targets, jobs)  # targets: moegen.backends.triton.compile.TritonJob

    def audit_dump_dir(
        self,
        dump_dir: Path,
        *,
        weight: int | str,
        expected: str | None = None,
        bounds: Mapping[str, int] | None = None,
    ) -> Sequence[Any]:
        from moegen.backends.triton.compile import audit_dump_dir

        return audit_dump_dir(dump_dir, weight=weight, expected=expected, bounds=bounds)

    def verify_variants(
        self,
        variants: Sequence[Any],
        *,
        archs: Sequence[str],
        shapes: Sequence[str],
        work: Path,
        jobs: int,
    ) -> tuple[bool, str]:
        from moegen.backends.triton import compile as tc

        results = tc.compile_many(tc.plan(variants, archs, shapes, work), jobs)
        return all(r.ok for r in results), tc.report(results)

    def template_globals(self) -> Mapping[str, Any]:
        from moegen.backends.triton import limits

        return {"limits": limits}


BACKEND = Triton()
