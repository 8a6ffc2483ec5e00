"""The interface every backend implements, and nothing else: the spec, the address model and the
renderer know a backend only through it (import-linter forbids them a backend's own modules).

A backend is a subpackage of moegen.backends whose module `backend` defines BACKEND, an
instance of a Backend subclass; moegen.backends.get_backend finds it by the name
variants.yaml uses. That module stays free of heavy imports (torch, the DSL): `moegen validate`
and `moegen render` only need its templates and limits, and the methods import the rest when
called.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


class Backend(ABC):
    """One kernel language / compiler: its templates, what they can handle, how its kernels
    compile on the CPU and how their dumps are audited."""

    #: the name variants.yaml and generated/<name>/ use
    name: str
    #: how headers and the README name it ("FlyDSL")
    title: str
    #: the template of each stage's kernel module, relative to templates/
    kernel_templates: Mapping[int, str]
    #: the module of device helpers its generated kernels import (the only moegen module
    #: besides moegen.runtime they may import)
    device_module: str
    #: the vendors of the archs it can compile for (variants.yaml `archs.<arch>.vendor`)
    vendors: tuple[str, ...] = ("amd",)
    #: the per-arch tables of a dtype its templates read (`dtypes.<d>.<table>.<arch>`)
    dtype_tables: tuple[str, ...] = ("mfma", "torch_dtype")
    #: whether its variants take `configs:` (tile regimes by token count) in variants.yaml
    tile_configs: bool = False
    #: the template of each variant's generated boundary test, relative to templates/
    test_template: str = "tests/test_boundary.py.j2"

    def module_relpath(self, variant_name: str) -> str:
        """A variant's kernel module, relative to generated/."""
        return f"{self.name}/{variant_name}.py"

    def module_import(self, variant_name: str) -> str:
        """A variant's kernel module as an import name."""
        return f"generated.{self.name}.{variant_name}"

    @abstractmethod
    def check_tiles(self, variant: Any) -> list[str]:
        """What the templates cannot handle for `variant`, one reason each ([] if nothing)."""

    @abstractmethod
    def compile_many(self, targets: Iterable[Any], jobs: int | None = None) -> list[Any]:
        """Compile every target for its arch on the CPU, in subprocesses, in input order."""

    @abstractmethod
    def audit_dump_dir(
        self,
        dump_dir: Path,
        *,
        weight: int | str,
        expected: str | None = None,
        bounds: Mapping[str, int] | None = None,
    ) -> Sequence[Any]:
        """Audit every kernel dumped under `dump_dir` (moegen.verify.verdicts.KernelAudit each)."""

    def verify_variants(
        self,
        variants: Sequence[Any],
        *,
        archs: Sequence[str],
        shapes: Sequence[str],
        work: Path,
        jobs: int,
    ) -> tuple[bool, str]:
        """`moegen verify` for this backend's variants, where it does not go through
        moegen.verify's FlyDSL plan: (all ok, report text)."""
        raise NotImplementedError(f"backend {self.name} has no verify of its own")

    def template_globals(self) -> Mapping[str, Any]:
        """Names this backend's templates read from Python (as `backends.<name>.<key>`)."""
        return {}

    def emulator_frontend(self) -> Any | None:
        """The module that turns this backend's dumps into what moegen.emulator runs, or None
        where the emulator cannot run its kernels."""
        return None
