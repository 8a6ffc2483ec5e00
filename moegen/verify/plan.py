"""Plan `moegen verify`: a check per generated kernel, shape it ships for, and arch.

Users run kernels specialized at their own model_dim and inter (constexprs, baked into the
code), so the kernel compiled at a unit-test shape is not the one that runs in production: an
i32 product such as `expert * (rows * cols)` folds to small constants there and looks bounded.
verify therefore checks every (variant, shape, arch): each variant of variants.yaml (the one
enumeration, moegen.spec.expand.enumerate_variants; a non-default tile is its own variant, so every
declared tile is covered), at every shape under `shapes:` (at least `small` and `production`),
for each arch it declares. Each is compiled on the CPU (FlyDSL COMPILE_ONLY) in its own
subprocess (moegen.backends.flydsl.compile), N at a time, all shapes in one pool. Each check's
compile is a "prepare" job of the compile entry (moegen.backends.flydsl.entry): CPU
`torch.empty` operands of the shape (never touched, so a 9 GiB weight costs nothing), routed
with moegen.runtime.routing.moe_sorting, the module's prepare() builds its LaunchPlan and each
KernelCall's launcher is called. The expert count is the shape's, or, where the launcher guard refuses
that many (whole_tensor weights past 4 GiB), the most it admits: those are the expert ids the
kernel can ever see at that shape. A (variant, shape, arch) FAILS when

- the compile fails: non-zero exit or signal, `^error:` / `LLVM ERROR` / `UNREACHABLE` on stderr,
  or an ISA lacking buffer loads, the MFMA the dtype declares for the arch (mnemonic derived
  from its op name), or buffer atomics where the variant accumulates (split-K, stage 2);
- the audit (moegen.backends.flydsl.audit) finds weight addressing (the kernels' 2nd tensor parameter W) other
  than the declared one, or an i32 product widened to i64 that can exceed the i32 range at
  that shape: constexpr dimensions are the shape's constants in the audited code, and runtime
  values are bounded from the same shape (expert ids <= experts - 1, routing values for the
  most tokens the launcher admits, block ids of the real grid); widenings whose range cannot
  be evaluated are warnings;
- a kernel spills registers or uses scratch (private segment size > 0);
- at the `production` shape, an ISA counter (moegen.verify.counters) misses a floor the variant
  declares under `floors:` (moegen.verify.counters_table.floor_violations; a kernel without a
  steady-state K loop misses every loop floor). Floors bound the kernel users run; the `small`
  shape is the unit-test specialization, whose K loop the compiler unrolls completely.

Successful compiles are cached under $MOEGEN_CACHE_DIR/verify (moegen.backends.flydsl.compile.cache_home),
keyed by the compile job (module path, shape, dtypes), the arch and
moegen.backends.flydsl.compile.source_fingerprint of the generated module and of the compile
entry (every moegen file either imports, the flydsl version, FLYDSL_* settings): the generated boundary tests re-verify each variant after `moegen
verify` without compiling again. The audit always re-runs. `--no-cache` compiles everything.

torch-dependent modules (torch, moegen.runtime.launch, moegen.runtime.routing) are imported where used, so
registering the command keeps `moegen` quick to start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moegen.backends.flydsl.compile import (
    CompileResult,
    CompileTarget,
)
from moegen.core import address_model
from moegen.spec.errors import SpecError
from moegen.spec.load import load_spec, raise_if
from moegen.spec.model import Shape, Spec, Variant
from moegen.verify.counters import KernelCounters
from moegen.verify.verdicts import KernelAudit

SMALL_TOKENS = 32  # tokens of the compile inputs (the spec's shapes do not fix a token count)
REQUIRED_SHAPES = ("small", "production")  # verify needs these under `shapes:`
WEIGHT_PARAM = 1  # the expert weight W is every kernel's 2nd tensor parameter
SCALE_PARAM = "WScale"  # a scaled dtype's per-channel weight scale (audited like W)


# ------------------------------------------------------------------------ what each must hold


def mfma_pattern(op: str) -> str:
    """Regex for the ISA mnemonic of a rocdl MFMA op name.

    `mfma_f32_16x16x16bf16_1k` -> v_mfma_f32_16x16x16_bf16 (or ..16bf16_1k), `mfma_i32_16x16x32_i8`
    -> v_mfma_i32_16x16x32_i8: LLVM prints an underscore before the operand type and may drop
    the `_1k` suffix.
    """
    m = re.fullmatch(r"mfma_([a-z0-9]+)_(\d+x\d+x\d+)_?([a-z0-9_]+?)(?:_1k)?", op)
    if not m:
        raise ValueError(f"cannot derive an ISA mnemonic from MFMA op {op!r}")
    acc, shape, operands = m.groups()
    return rf"v_mfma_{acc}_{shape}_?{operands}(_1k)?$"


def required_isa(v: Variant, arch: str) -> tuple[str, ...]:
    """Mnemonic patterns every kernel of `v` must contain on `arch`."""
    patterns = ["buffer_load", mfma_pattern(v.dtype.mfma[arch].op)]
    if v.split_k > 1:  # split-K partial sums meet in float32 memory
        patterns.append("buffer_atomic_add_f32")
    if v.stage == 2:  # the topk slots meet in memory, or are stored per slot (reduce mode)
        patterns.append(STAGE2_OUTPUT_ISA[v.accumulate, v.stored_dtype])
    return tuple(patterns)


# The instruction stage 2's epilogue must compile to, by (accumulate, output dtype).
STAGE2_OUTPUT_ISA = {
    ("atomic", "float32"): "buffer_atomic_add_f32",
    ("atomic", "float16"): "buffer_atomic_pk_add_f16",
    ("atomic", "bfloat16"): "buffer_atomic_pk_add_bf16",
    ("reduce", "float32"): "buffer_store_dword$",
    ("reduce", "float16"): "buffer_store_short",
    ("reduce", "bfloat16"): "buffer_store_short",
}


def shipped_shapes(spec: Spec) -> list[Shape]:
    """Every shape under `shapes:` (each is a shape variants ship for); ValueError naming the
    spec if `small` or `production` is missing."""
    names = [s.name for s in spec.shapes]
    missing = [n for n in REQUIRED_SHAPES if n not in names]
    if missing:
        raise ValueError(
            f"{spec.path}: verify needs shapes named {', '.join(map(repr, missing))} under "
            f"`shapes:` (found: {', '.join(names) or 'none'}); add them with experts, "
            "model_dim, inter and topk"
        )
    return list(spec.shapes)


def admitted_experts(v: Variant, shape: Shape) -> int:
    """The most experts (<= shape.experts) whose operands the launcher guard of `v` accepts at
    `shape` for a SMALL_TOKENS batch: the shape's count, fewer for a whole_tensor weight past
    4 GiB, 0 if not even one expert's slab is addressable."""
    info = v.record
    for experts in range(shape.experts, 0, -1):
        p = address_model.Problem(experts, shape.model_dim, shape.inter, SMALL_TOKENS, shape.topk)
        if address_model.addressable(info, p):
            return experts
    return 0


def max_tokens(v: Variant, shape: Shape, experts: int) -> int:
    """The most tokens `v` accepts at `shape` with `experts` experts: every token-dependent
    tensor stays addressable (the weights do not depend on tokens) and the token fits the
    24-bit routing field."""
    from moegen.runtime import launch

    p = address_model.Problem(
        experts, shape.model_dim, shape.inter, launch.MAX_TOKENS - 1, shape.topk
    )
    info = v.record
    return min(
        [launch.MAX_TOKENS - 1]
        + [
            address_model.max_tokens(info, p, s.tensor)
            for s in address_model.spans(info, p)
            if not s.tensor.startswith("w")
        ]
    )


def runtime_bounds(v: Variant, shape: Shape, experts: int) -> dict[str, int]:
    """Maxima of the runtime values the kernel's index math sees at `shape` with `experts`
    experts: values loaded from the routing tensors (an expert id is at most experts - 1),
    and block ids of the launch grid for the most tokens the launcher admits."""
    from moegen.runtime import routing

    tokens = max_tokens(v, shape, experts)
    blocks = routing.num_m_blocks(tokens, shape.topk, experts, v.tile_m)
    # grid: (N tiles, M blocks, K slices); stage 1 N = inter, stage 2 N = model_dim
    n_tiles = (shape.inter if v.stage == 1 else shape.model_dim) // v.tile_n
    return {
        "SortedExpertIds": experts - 1,
        "SortedTokenIds": (shape.topk << routing.TOKEN_BITS) | tokens,
        "NumValidIds": blocks * v.tile_m,
        "block_idx.x": n_tiles - 1,
        "block_idx.y": blocks - 1,
        "block_idx.z": v.split_k - 1,
    }


# -------------------------------------------------------------------------------- one check


@dataclass(frozen=True)
class Check:
    """One (variant, shape, arch): what it must satisfy, where it compiles.

    module: the file defining the kernels (what `target.module` names);
    experts: the expert count compiled and bounded (the shape's, or the most the launcher
    admits); bounds: maxima of runtime values for the audit (see runtime_bounds)."""

    variant: Variant
    arch: str
    target: CompileTarget
    bounds: Mapping[str, int]
    shape: Shape
    experts: int
    module: Path

    @property
    def tile(self) -> str:
        v = self.variant
        return f"{v.tile_m}x{v.tile_n}x{v.tile_k}"

    @property
    def shape_cell(self) -> str:
        """The shape's name, with the expert count when the launcher admits fewer."""
        name = self.shape.name
        return name if self.experts == self.shape.experts else f"{name}[E={self.experts}]"

    def describe_shape(self) -> str:
        """E.g. "production (model_dim 6144, inter 3072, experts 128, topk 4)"."""
        s = self.shape
        experts = f"experts {self.experts}"
        if self.experts != s.experts:
            experts += f" (of {s.experts}: the most the launch guard admits)"
        return f"{s.name} (model_dim {s.model_dim}, inter {s.inter}, {experts}, topk {s.topk})"


@dataclass(frozen=True)
class Outcome:
    """The verdict on one (variant, shape, arch); failed iff `problems` is non-empty."""

    check: Check
    compiled: CompileResult
    audits: tuple[KernelAudit, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    counters: tuple[KernelCounters, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _compile_params(v: Variant, arch: str, module: Path, shape: Shape, experts: int) -> dict:
    """What the compile entry builds the plan's operands from (its job's "operands")."""
    return {
        "stage": v.stage,
        "experts": experts,
        "model_dim": shape.model_dim,
        "inter": shape.inter,
        "tokens": SMALL_TOKENS,
        "topk": shape.topk,
        "tile_m": v.tile_m,
        "act_dtype": v.dtype.act_torch[arch],
        "weight_dtype": v.dtype.weight_torch[arch],
        # a scaled dtype's prepare() also takes its scale tensors (launch.empty_scales)
        **({"variant": v.record} if v.dtype.scales else {}),
        # packed weights (int4: 2 per byte) store K / weight_pack elements per row
        **({"weight_pack": v.dtype.packing} if v.dtype.packing > 1 else {}),
    }


def plan_checks(
    spec_path: Path,
    variants: Sequence[Variant],
    archs: Sequence[str],
    work: Path,
    shape_names: Sequence[str] = (),
) -> list[Check]:
    """A Check per variant, shipped shape (kept if in `shape_names`, or all if empty) and
    declared arch (kept if in `archs`, or all if empty), with its dumps under
    `work`. An unknown shape name, or a shape at which the launcher refuses every expert
    count of a variant, is a ValueError."""
    errors: list[SpecError] = []
    spec = load_spec(spec_path, errors)
    raise_if(errors)
    shapes = shipped_shapes(spec)
    unknown = sorted(set(shape_names) - {s.name for s in shapes})
    if unknown:
        raise ValueError(
            f"no shape named {', '.join(map(repr, unknown))} under `shapes:` in {spec.path} "
            f"(choose from: {', '.join(s.name for s in shapes)})"
        )
    shapes = [s for s in shapes if not shape_names or s.name in shape_names]
    modules = spec_path.parent / "generated"
    checks = []
    for v in variants:
        module = (modules / v.module_relpath).resolve()
        for shape in shapes:
            experts = admitted_experts(v, shape)
            if experts == 0:
                raise ValueError(
                    f"{v.name}: its launcher refuses shape {shape.name!r} even for one expert "
                    f"(see `moegen boundary {v.name}`); fix the shape in {spec.path} or the "
                    "variant's tile/addressing"
                )
            bounds = runtime_bounds(v, shape, experts)
            for arch in v.archs:
                if archs and arch not in archs:
                    continue
                params = _compile_params(v, arch, module, shape, experts)
                base = work / v.name / shape.name / arch
                try:
                    required = required_isa(v, arch)
                except ValueError as exc:
                    raise ValueError(f"{v.name} [{arch}]: {exc} (dtype {v.dtype.name})") from None
                target = CompileTarget(
                    module,
                    "prepare",
                    arch,
                    base / "dump",
                    required,
                    kind="prepare",
                    job={"operands": params},
                )
                checks.append(Check(v, arch, target, bounds, shape, experts, module))
    return checks
