"""The model variants.yaml becomes: a Spec and its Variants, frozen dataclasses.

The spec has five top-level sections:

    archs:    target architectures and what each can accumulate atomically
    dtypes:   what a dtype IS (bits, packing, scales, torch dtype and MFMA per arch)
    shapes:   problem shapes every variant must tile exactly (a small test shape, production)
    defaults: values a variant entry may leave out
    matrix:   blocks whose list-valued axes expand to a cartesian product (with `exclude:`)
    variants: explicit single entries

moegen.spec.load checks structure (known keys in every mapping at every level, names that are strings,
types, ranges); `moegen.spec.expand` turns the matrix and the explicit entries into Variants and
checks the combinations (and the keys of `tile:` and `exclude:` rules). Every problem is
collected with its file:line:col and a fix, so one run reports all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from moegen.backends import get_backend
from moegen.core.vocabulary import (  # noqa: F401  (part of the model)
    ACCUMULATE_MODES,
    ACCUMULATORS,
    ACTIVATION_ROWS,
    ADDRESSING_MODES,
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_VENDOR,
    SCALE_APPLIED,
    SCALE_KINDS,
    TEMPLATE_ACCUMULATORS,
    TEMPLATE_SCALES,
    VENDORS,
    WEIGHT_LAYOUTS,
    Mfma,
    Scale,
)
from moegen.spec.errors import Location
from moegen.spec.located import LList, LMap

STAGES = (1, 2)
WEIGHT_BITS = (4, 8, 16)
# torch's own vocabulary of dtype names that a kernel may read or write.
TORCH_DTYPES = {
    "bfloat16": 16,
    "float16": 16,
    "float32": 32,
    "float8_e4m3fnuz": 8,
    "float8_e4m3fn": 8,
    "int8": 8,
    "uint8": 8,
}
# small: unit tests and `moegen verify`; production: the boundary tests' sweep.
REQUIRED_SHAPES = ("small", "production")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")

TOP_KEYS = ("version", "archs", "dtypes", "shapes", "defaults", "matrix", "variants")
ARCH_KEYS = ("atomics", "vendor")
DTYPE_KEYS = (
    "activation",
    "activation_bits",
    "weight",
    "weight_bits",
    "packing",
    "weight_layout",
    "scales",
    "accumulator",
    "intermediate",
    "activation_rows",
    "torch_dtype",
    "mfma",
)
# weight_layout may be left out: it defaults to the first of WEIGHT_LAYOUTS (preshuffle_16x16);
# accumulator defaults to f32; intermediate (stage 1's output dtype) to the activation dtype.
DTYPE_OPTIONAL_KEYS = ("weight_layout", "accumulator", "intermediate", "activation_rows")
DTYPE_REQUIRED_KEYS = tuple(k for k in DTYPE_KEYS if k not in DTYPE_OPTIONAL_KEYS)
# One `scales:` entry: its kind, the torch dtype of its values, where it is applied, and (per_group
# only) the group size along K.
SCALE_KEYS = ("kind", "dtype", "applied", "group")
SCALE_REQUIRED_KEYS = ("kind", "dtype", "applied")
TORCH_DTYPE_KEYS = ("activation", "weight")
MFMA_KEYS = ("op", "k", "operand", "width")
SHAPE_KEYS = ("experts", "model_dim", "inter", "topk")
TILE_KEYS = ("m", "n", "k")
# A tile map may also say up to how many tokens it serves (tiles per regime, picked by token count).
# and the ISA counter floors of that tile, over the variant's (a prefill tile's occupancy differs).
TILE_MAP_KEYS = TILE_KEYS + ("max_tokens", "floors")
# One tile regime of a backend that takes them (Triton): the largest token count it serves
# (the last one also serves every larger count), its tile, warps and pipeline stages.
CONFIG_KEYS = ("tokens", "m", "n", "k", "warps", "stages")
# Keys a variant may carry (defaults, matrix blocks and explicit entries share them).
VARIANT_KEYS = (
    "dtype",
    "addressing",
    "stage",
    "split_k",
    "archs",
    "tile",
    "doweight",
    "out_dtype",
    "accumulate",
    "preferred",
    "backend",
    "configs",
    "floors",
    "k_unroll",
)
AXES = (
    "dtype",
    "addressing",
    "stage",
    "split_k",
    "doweight",
    "out_dtype",
    "accumulate",
    "preferred",
    "backend",
)


@dataclass(frozen=True)
class DType:
    """A dtype's declared properties; code reads these, never the dtype's name."""

    name: str
    activation: str
    activation_bits: int
    weight: str
    weight_bits: int
    packing: int
    weight_layout: str
    scales: tuple[Scale, ...]
    act_torch: Mapping[str, str]
    weight_torch: Mapping[str, str]
    mfma: Mapping[str, Mfma]
    accumulator: str = "f32"  # one of ACCUMULATORS: the MFMA accumulator type
    # Stage 1's output torch dtype (None: the activation dtype). A scaled 8-bit dtype writes a
    # 16-bit intermediate that the host re-quantizes per row for stage 2.
    intermediate: str | None = None
    # How stage 1's activations arrive: one row per token, or pre-expanded per (token, slot),
    # slot-major (one of ACTIVATION_ROWS; int8smooth).
    activation_rows: str = "token"

    def scale(self, kind: str) -> Scale | None:
        """The declared scale of `kind` (a SCALE_KINDS key), or None."""
        return next((s for s in self.scales if s.kind == kind), None)

    @property
    def act_scale(self) -> Scale | None:
        """The per-token activation scale, if the dtype declares one."""
        return self.scale("per_token")

    @property
    def weight_scale(self) -> Scale | None:
        """The weight's scale tensor (per-output-channel or per-group), if the dtype declares
        one: the kernels' WScale argument, addressed and audited like the weight."""
        return self.scale("per_channel") or self.scale("per_group")

    @property
    def epilogue_weight_scale(self) -> Scale | None:
        """The weight scale applied to the accumulator in the epilogue (per-output-channel)."""
        s = self.weight_scale
        return s if s is not None and s.applied == "epilogue" else None

    @property
    def group_scale(self) -> Scale | None:
        """The weight scale applied to the weights per group along K, dequantized in registers
        before the MFMA (int4 W4A16), if the dtype declares one."""
        s = self.weight_scale
        return s if s is not None and s.applied == "weights" else None

    @property
    def weight_bytes(self) -> float:
        """Bytes per logical weight element (0.5 for int4)."""
        return self.weight_bits / 8

    @property
    def act_bytes(self) -> float:
        return self.activation_bits / 8

    def for_archs(self, archs: Sequence[str]) -> DType:
        """The dtype as a variant sees it: its per-arch tables cut to the variant's archs (an
        arch another backend's variants add to a dtype changes nothing this variant renders)."""

        def cut(table: Mapping[str, Any]) -> Mapping[str, Any]:
            return MappingProxyType({a: table[a] for a in table if a in archs})

        return replace(
            self,
            act_torch=cut(self.act_torch),
            weight_torch=cut(self.weight_torch),
            mfma=cut(self.mfma),
        )


@dataclass(frozen=True)
class Arch:
    name: str
    atomics: tuple[str, ...]
    vendor: str = DEFAULT_VENDOR  # one of VENDORS


@dataclass(frozen=True)
class TileRegime:
    """A tile config used up to `tokens` tokens (Triton variants' `configs:`)."""

    tokens: int
    m: int
    n: int
    k: int
    warps: int
    stages: int


@dataclass(frozen=True)
class Shape:
    """A problem shape that every variant must tile exactly."""

    name: str
    experts: int
    model_dim: int
    inter: int
    topk: int


@dataclass(frozen=True)
class Source:
    """Where a variant was declared: an explicit entry, or a matrix block."""

    loc: Location
    kind: str  # "matrix" | "variant"
    index: int


@dataclass(frozen=True)
class Variant:
    """One fully resolved kernel variant: everything a template needs."""

    name: str
    dtype: DType
    addressing: str
    stage: int
    split_k: int
    tile_m: int
    tile_n: int
    tile_k: int
    archs: tuple[str, ...]
    doweight: bool
    out_dtype: str
    preferred: bool
    source: Source = field(compare=False, repr=False)
    shapes: tuple[Shape, ...] = field(default=(), compare=False, repr=False)
    backend: str = DEFAULT_BACKEND  # one of BACKENDS; renders with that backend's templates
    # Tiles per regime: auto-dispatch picks this variant's tile for token counts in
    # [min_tokens, max_tokens] (None: no upper bound). expand() derives min_tokens from the
    # other tiles of the same family (the variants that differ only in their tile).
    min_tokens: int = 1
    max_tokens: int | None = None
    # Stage 2: how the topk slots of a token meet (moegen.core.vocabulary.ACCUMULATE_MODES).
    accumulate: str = "atomic"
    # Tile regimes by token count, ascending (backends with `tile_configs` only).
    configs: tuple[TileRegime, ...] = ()
    # arch -> vendor of each declared arch (archs.<arch>.vendor)
    arch_vendors: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # ISA counter floors `moegen verify` holds the variant to (moegen.spec.floors), in
    # moegen.core.vocabulary.FLOORS order; not rendered into the kernel.
    floors: tuple[tuple[str, float], ...] = field(default=(), compare=False, repr=False)
    # The K loop's unroll directive (variants.yaml `k_unroll`): None lets LLVM decide; 1 keeps
    # the loop a loop (FlyDSL range(..., unroll=1)), N unrolls it N times.
    k_unroll: int | None = None

    # --- paths: derived from the name in this one place ---------------------------------
    @property
    def module_relpath(self) -> str:
        return get_backend(self.backend).module_relpath(self.name)

    @property
    def test_relpath(self) -> str:
        return f"tests/test_{self.name}.py"

    @property
    def module_import(self) -> str:
        return get_backend(self.backend).module_import(self.name)

    def shape(self, name: str) -> Shape:
        """One of the spec's problem shapes (`small`, `production`)."""
        for s in self.shapes:
            if s.name == name:
                return s
        raise KeyError(f"variants.yaml declares no shape {name!r} under `shapes:`")

    @property
    def boundary_cases(self) -> list:
        """The generated boundary test's cases (moegen.core.address_model decides them)."""
        from moegen.core.sweep import boundary_cases

        prod = self.shape("production")
        return boundary_cases(
            self.record,
            experts=prod.experts,
            model_dim=prod.model_dim,
            topk=prod.topk,
            production_inter=prod.inter,
        )

    @property
    def stored_dtype(self) -> str:
        """The torch dtype the kernel's result is stored in: stage 2 accumulates in out_dtype;
        stage 1 stores in the dtype's `intermediate` if it declares one (a scaled 8-bit dtype:
        16-bit), else in the activation dtype (the same torch dtype on every declared arch)."""
        if self.stage == 2:
            return self.out_dtype
        if self.dtype.intermediate is not None:
            return self.dtype.intermediate
        (act,) = {self.dtype.act_torch[arch] for arch in self.archs}
        return act

    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters, in a fixed order (header, `moegen list`, manifest).

        The backend is named only where it is not the default one: the default backend's
        output stayed byte-identical when the `backend` axis was added."""
        params = {
            "dtype": self.dtype.name,
            "addressing": self.addressing,
            "stage": self.stage,
            "split_k": self.split_k,
            "tile": {"m": self.tile_m, "n": self.tile_n, "k": self.tile_k},
            "tokens": self.tokens_text,
            "archs": list(self.archs),
            "doweight": self.doweight,
            "out_dtype": self.stored_dtype,
            **({"accumulate": self.accumulate} if self.stage == 2 else {}),
            "preferred": self.preferred,
        }
        if self.backend != DEFAULT_BACKEND:
            params["backend"] = self.backend
        return params

    @property
    def tokens_text(self) -> str:
        """The token counts this tile serves, e.g. `1-512` or `513+`."""
        if self.max_tokens is None:
            return f"{self.min_tokens}+"
        return f"{self.min_tokens}-{self.max_tokens}"

    @property
    def family(self) -> tuple:
        """Everything but the tile: the variants of one family are the same kernel at
        different tiles, and auto-dispatch picks among them by token count."""
        return (
            self.backend,
            self.dtype.name,
            self.addressing,
            self.stage,
            self.split_k,
            self.archs,
            self.doweight,
            self.out_dtype,
            self.accumulate,
            self.preferred,
        )

    @property
    def family_text(self) -> str:
        """A sort key grouping a family's tiles in token order (the registry's regime table)."""
        return f"{'_'.join(map(str, self.family))}/{self.min_tokens:09d}"

    @property
    def record(self) -> dict[str, Any]:
        """Plain values a generated module keeps as VARIANT (read by guards and dispatch)."""
        info = {
            "name": self.name,
            "stage": self.stage,
            "dtype": self.dtype.name,
            "addressing": self.addressing,
            "split_k": self.split_k,
            "tile_m": self.tile_m,
            "tile_n": self.tile_n,
            "tile_k": self.tile_k,
            "min_tokens": self.min_tokens,
            "max_tokens": self.max_tokens,
            "doweight": self.doweight,
            "out_dtype": self.stored_dtype,
            "archs": list(self.archs),
            "act_bits": self.dtype.activation_bits,
            "weight_bits": self.dtype.weight_bits,
            "weight_pack": self.dtype.packing,
            "weight_layout": self.dtype.weight_layout,
            "out_bits": TORCH_DTYPES[self.stored_dtype],
            "accumulate": self.accumulate,
            "preferred": self.preferred,
        }
        if self.dtype.scales:
            # Scale tensors (the guards and the address model size them from these).
            info["scales"] = [
                {"kind": s.kind, "operand": s.operand, "dtype": s.dtype, "applied": s.applied}
                | ({"group": s.group} if s.group else {})
                for s in self.dtype.scales
            ]
            info["accumulator"] = self.dtype.accumulator
        if self.stage == 1 and self.dtype.activation_rows != "token":
            # x [topk * tokens, model_dim], slot-major (the launcher, guards and harness read it)
            info["act_rows"] = self.dtype.activation_rows
        if self.backend != DEFAULT_BACKEND:
            # The address model's line depends on the backend and on its targets' vendors.
            info["backend"] = self.backend
            info["targets"] = {arch: self.arch_vendors[arch] for arch in self.archs}
        return info


@dataclass(frozen=True)
class Spec:
    path: str
    archs: Mapping[str, Arch]
    dtypes: Mapping[str, DType]
    shapes: tuple[Shape, ...]
    defaults: LMap
    matrix: LList
    variants: LList
    # Declared but invalid (already reported): references to them are not reported again.
    broken_dtypes: frozenset = frozenset()
