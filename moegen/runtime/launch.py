"""Host side shared by every generated kernel module: validation, launch plans, running them.

A generated module's prepare() validates its operands here (shapes, dtypes, contiguity,
routing tensors, tile divisibility and the 32-bit offset limits of moegen.core.address_model),
using tensor metadata only, so meta or CPU ``torch.empty`` tensors of any size can be
checked without allocating them. It returns a LaunchPlan: torch pre-steps, kernel calls,
torch post-steps. run_plan() executes one on the current device; the CPU emulator runs
the same plan with the kernels replaced by emulated launches.

The render-time counterpart (tiles and options the templates cannot handle) is
moegen.backends.flydsl.limits.check_tiles.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional

import torch

from moegen.core import address_model
from moegen.runtime import routing

MAX_TOKENS = 1 << 24  # sorted_token_ids keeps the token in its low 24 bits ...
MAX_TOPK = 1 << 8  # ... and the topk slot in the high 8


# ---- launch plans ----------------------------------------------------------------------


@dataclass(frozen=True)
class TorchStep:
    """A host-side torch operation run before or after the kernels (zeroing, reductions)."""

    description: str
    fn: Callable[[], Any]


@dataclass(frozen=True)
class KernelCall:
    """One flyc.jit launcher call: launcher(*args, **constexprs).

    args are the runtime tensors in launcher order (what an emulator passes to the
    kernel); kernel_name is the @flyc.kernel function (dumps land in <kernel_name>_0/).
    """

    launcher: Callable[..., Any]
    args: tuple[torch.Tensor, ...]
    constexprs: Mapping[str, int]
    kernel_name: str


@dataclass(frozen=True)
class LaunchPlan:
    """Everything one entry point does, in order; result is filled once the plan has run."""

    pre: tuple[TorchStep, ...]
    kernels: tuple[KernelCall, ...]
    post: tuple[TorchStep, ...]
    result: torch.Tensor


def run_plan(plan: LaunchPlan) -> torch.Tensor:
    """Run a plan on the current device (under COMPILE_ONLY=1 the launchers only compile)."""
    for step in plan.pre:
        step.fn()
    for call in plan.kernels:
        call.launcher(*call.args, **call.constexprs)
    for step in plan.post:
        step.fn()
    return plan.result


# ---- render-time checks ------------------------------------------------------------------


# ---- operand validation ------------------------------------------------------------------


@dataclass(frozen=True)
class MoeDims:
    """Problem dimensions read from the operands' shapes."""

    experts: int
    model_dim: int
    inter: int
    tokens: int
    topk: int
    num_m_blocks: int

    def constexprs(self) -> dict[str, int]:
        """The launcher's compile-time arguments (each distinct set compiles once)."""
        return {
            "model_dim": self.model_dim,
            "inter": self.inter,
            "topk": self.topk,
            "num_m_blocks": self.num_m_blocks,
        }


def _check_tensor(
    problems: list[str],
    name: str,
    t: torch.Tensor,
    *,
    ndim: int,
    dtypes: tuple[str, ...],
    expected: str,
) -> bool:
    """Append rank/dtype/contiguity problems of one operand; True if its shape can be read."""
    if not isinstance(t, torch.Tensor):
        problems.append(f"{name}: expected a torch.Tensor {expected}, got {type(t).__name__}")
        return False
    ok = True
    if t.dim() != ndim:
        problems.append(f"{name}: expected {ndim}-D {expected}, got shape {list(t.shape)}")
        ok = False
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in dtypes:
        problems.append(f"{name}: expected dtype {' or '.join(dtypes)}, got {dtype}")
    if not t.is_contiguous():
        problems.append(f"{name}: must be contiguous (row-major), got strides {list(t.stride())}")
    return ok


def _check_routing(
    problems: list[str],
    variant: Mapping[str, Any],
    sorted_token_ids: torch.Tensor,
    sorted_weights: torch.Tensor,
    sorted_expert_ids: torch.Tensor,
    num_valid_ids: torch.Tensor,
    *,
    tokens: int,
    topk: int,
    experts: int,
) -> None:
    tile_m = variant["tile_m"]
    shape_ok = _check_tensor(
        problems,
        "sorted_token_ids",
        sorted_token_ids,
        ndim=1,
        dtypes=("int32",),
        expected="[max_num_tokens_padded]",
    )
    shape_ok &= _check_tensor(
        problems,
        "sorted_weights",
        sorted_weights,
        ndim=1,
        dtypes=("float32",),
        expected="[max_num_tokens_padded]",
    )
    shape_ok &= _check_tensor(
        problems,
        "sorted_expert_ids",
        sorted_expert_ids,
        ndim=1,
        dtypes=("int32",),
        expected="[num_m_blocks]",
    )
    shape_ok &= _check_tensor(
        problems,
        "num_valid_ids",
        num_valid_ids,
        ndim=1,
        dtypes=("int32",),
        expected="[>= 1]",
    )
    if not shape_ok:
        return
    if num_valid_ids.numel() < 1:
        problems.append(
            "num_valid_ids: expected at least 1 element (the number of padded sorted rows), "
            "got 0; pass the num_valid_ids that moegen.runtime.routing.moe_sorting returns"
        )
    if sorted_weights.numel() != sorted_token_ids.numel():
        problems.append(
            f"sorted_weights: expected {sorted_token_ids.numel()} elements (one per sorted_token_ids entry), "
            f"got {sorted_weights.numel()}"
        )
    needed_blocks = routing.num_m_blocks(tokens, topk, experts, tile_m)
    if sorted_expert_ids.numel() < needed_blocks:
        problems.append(
            f"sorted_expert_ids: expected >= {needed_blocks} M-blocks (tokens*topk + E*tile_m - topk rows "
            f"in blocks of tile_m={tile_m}), got {sorted_expert_ids.numel()}; use moegen.runtime.routing.moe_sorting"
        )
    if sorted_token_ids.numel() < sorted_expert_ids.numel() * tile_m:
        problems.append(
            f"sorted_token_ids: expected >= {sorted_expert_ids.numel() * tile_m} entries "
            f"({sorted_expert_ids.numel()} M-blocks x tile_m={tile_m}), "
            f"got {sorted_token_ids.numel()}; use moegen.runtime.routing.moe_sorting"
        )


def _check_common(
    problems: list[str],
    variant: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    topk: Any,
) -> bool:
    """topk and device checks shared by both stages; False if topk is unusable."""
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{n}: {d}" for n, d in devices.items())
        problems.append(
            f"all operands must be on one device, got {listed}; "
            "move them to one device with .to(device)"
        )
    if not isinstance(topk, int) or isinstance(topk, bool) or not 1 <= topk < MAX_TOPK:
        problems.append(f"topk: expected an int in [1, {MAX_TOPK}), got {topk!r}")
        return False
    return True


def _raise(variant: Mapping[str, Any], problems: list[str]) -> None:
    if problems:
        raise ValueError(f"{variant['name']}: invalid operands:\n  - " + "\n  - ".join(problems))


_SKIP_ADDRESS_GUARDS = contextvars.ContextVar("moegen_skip_address_guards", default=False)


@contextlib.contextmanager
def unsafe_skip_address_guards() -> Iterator[None]:
    """TEST-ONLY: inside this block, prepare() skips the 32-bit offset guards.

    It exists so a test can run a whole_tensor kernel past its 4 GiB line (on the CPU emulator)
    and show the corruption the guard prevents. Never use it to launch real work: the kernel
    WILL read or write the wrong memory. Shape, dtype and routing checks still apply.
    """
    token = _SKIP_ADDRESS_GUARDS.set(True)
    try:
        yield
    finally:
        _SKIP_ADDRESS_GUARDS.reset(token)


def _check_limits(problems: list[str], variant: Mapping[str, Any], dims: MoeDims) -> None:
    if _SKIP_ADDRESS_GUARDS.get():
        return
    problems.extend(
        address_model.check(
            dict(variant),
            experts=dims.experts,
            model_dim=dims.model_dim,
            inter=dims.inter,
            tokens=dims.tokens,
            topk=dims.topk,
        )
    )


def _packed(pack: int, sep: str = "") -> str:
    """How a message names a packed weight's last dim (nothing for unpacked weights)."""
    suffix = f"{sep}{pack}" if sep else f" / {pack} ({pack} values per stored element)"
    return "" if pack == 1 else suffix


def _stage1_dims(
    problems: list[str], variant: Mapping[str, Any], x: torch.Tensor, w1: torch.Tensor, topk: int
) -> tuple[int, int, int, int]:
    """(experts, model_dim, inter, tokens) of x [tokens, model_dim], w1 [E, 2*inter, model_dim];
    x [topk * tokens, model_dim] where the dtype's activations arrive expanded per (token, slot)."""
    tokens, model_dim = x.shape
    if variant.get("act_rows") == "expanded":
        if tokens % topk:
            problems.append(
                f"x: expected topk * tokens rows (topk={topk}), got {tokens}; this dtype's x is "
                "expanded per (token, slot), slot-major (moegen.runtime.quant.quantize_smooth)"
            )
        tokens //= topk
    experts, two_inter, w_model_dim = w1.shape
    inter = two_inter // 2
    pack = variant.get("weight_pack", 1)  # packed weights (int4: 2 per byte) store K / pack
    if w_model_dim * pack != model_dim:
        problems.append(
            f"w1: expected last dim model_dim={model_dim} (x.shape[1]){_packed(pack)}, got shape "
            f"{list(w1.shape)}"
        )
    if two_inter % 2:
        problems.append(
            f"w1: dim 1 holds gate and up rows, so it must be even, got {two_inter}; "
            "w1 is [experts, 2 * inter, model_dim], gate rows then up rows"
        )
    tile_n, tile_k, split_k = variant["tile_n"], variant["tile_k"], variant["split_k"]
    if inter % tile_n:
        problems.append(f"w1: inter={inter} must be a multiple of tile_n={tile_n}")
    if model_dim % (tile_k * split_k):
        problems.append(
            f"x: model_dim={model_dim} must be a multiple of tile_k * split_k = {tile_k} * {split_k} "
            f"(each of the {split_k} K slices is a whole number of tile_k steps)"
        )
    return experts, model_dim, inter, tokens


def _stage2_dims(
    problems: list[str], variant: Mapping[str, Any], a2: torch.Tensor, w2: torch.Tensor, topk: int
) -> tuple[int, int, int, int]:
    """(experts, model_dim, inter, tokens) of a2 [tokens*topk, inter], w2 [E, model_dim, inter]."""
    rows, inter = a2.shape
    experts, model_dim, w_inter = w2.shape
    pack = variant.get("weight_pack", 1)
    if rows % topk:
        problems.append(f"a2: expected tokens * topk rows (topk={topk}), got {rows}")
    if w_inter * pack != inter:
        problems.append(
            f"w2: expected last dim inter={inter} (a2.shape[1]){_packed(pack)}, got shape "
            f"{list(w2.shape)}; w2 is [experts, model_dim, inter{_packed(pack, ' / ')}]"
        )
    if model_dim % variant["tile_n"]:
        problems.append(
            f"w2: model_dim={model_dim} must be a multiple of tile_n={variant['tile_n']}"
        )
    if inter % variant["tile_k"]:
        problems.append(f"a2: inter={inter} must be a multiple of tile_k={variant['tile_k']}")
    return experts, model_dim, inter, rows // topk


# Per stage: (activation name, its layout, weight name, its layout, how to read the dims).
_STAGES = {
    1: ("x", "[tokens, model_dim]", "w1", "[experts, 2 * inter, model_dim]", _stage1_dims),
    2: ("a2", "[tokens * topk, inter]", "w2", "[experts, model_dim, inter]", _stage2_dims),
}


def validate(
    variant: Mapping[str, Any],
    act: torch.Tensor,
    w: torch.Tensor,
    sorted_token_ids: torch.Tensor,
    sorted_weights: torch.Tensor,
    sorted_expert_ids: torch.Tensor,
    num_valid_ids: torch.Tensor,
    *,
    topk: int,
    act_dtypes: Mapping[str, str],
    weight_dtypes: Mapping[str, str],
    scales: Optional[Mapping[str, torch.Tensor]] = None,
) -> MoeDims:
    """Check a generated module's operands for its stage (variant["stage"]); ValueError lists
    every problem. Stage 1: x [tokens, model_dim], w1 [E, 2*inter, model_dim]; stage 2:
    a2 [tokens*topk, inter], w2 [E, model_dim, inter]."""
    routing_tensors = (sorted_token_ids, sorted_weights, sorted_expert_ids, num_valid_ids)
    act_name, act_layout, w_name, w_layout, dims_of = _STAGES[variant["stage"]]
    if variant.get("act_rows") == "expanded":  # int8smooth: a row per (token, slot), slot-major
        act_layout = "[topk * tokens, model_dim] (slot-major)"
    problems: list[str] = []
    names = ("sorted_token_ids", "sorted_weights", "sorted_expert_ids", "num_valid_ids")
    tensors = {act_name: act, w_name: w, **dict(zip(names, routing_tensors))}
    topk_ok = _check_common(problems, variant, tensors, topk)
    act_ok = _check_tensor(
        problems,
        act_name,
        act,
        ndim=2,
        dtypes=tuple(sorted(set(act_dtypes.values()))),
        expected=act_layout,
    )
    w_ok = _check_tensor(
        problems,
        w_name,
        w,
        ndim=3,
        dtypes=tuple(sorted(set(weight_dtypes.values()))),
        expected=w_layout,
    )
    if not (act_ok and w_ok and topk_ok):
        _raise(variant, problems)
    experts, model_dim, inter, tokens = dims_of(problems, variant, act, w, topk)
    if not 1 <= tokens < MAX_TOKENS:
        fix = "pass at least one token" if tokens < 1 else "split the batch into smaller chunks"
        problems.append(
            f"{act_name}: tokens={tokens} must be in [1, {MAX_TOKENS}) "
            f"(24-bit token field of sorted_token_ids); {fix}"
        )
    _check_routing(problems, variant, *routing_tensors, tokens=tokens, topk=topk, experts=experts)
    _check_scales(problems, variant, scales or {}, act, w)
    dims = MoeDims(experts, model_dim, inter, tokens, topk, _blocks(routing_tensors[2]))
    _check_limits(problems, variant, dims)
    _raise(variant, problems)
    return dims


@dataclass(frozen=True)
class ScaleLayout:
    """One declared scale tensor as prepare() takes it."""

    kind: str  # per_token | per_channel | per_group (moegen.core.vocabulary.SCALE_KINDS)
    dtype: str
    shape: list[int]
    layout: str  # how messages describe the shape


def scale_layouts(
    variant: Mapping[str, Any], act_shape: tuple[int, ...], w_shape: tuple[int, ...]
) -> dict[str, ScaleLayout]:
    """The scale tensors the variant's dtype declares (VARIANT["scales"]), by property:
    prepare()'s keyword -> its layout. A per_token scale has one value per activation row
    (stage 1: token; stage 2: (token, slot) row), a per_channel one [E, N] over the weight's
    first two dims."""
    act_name, _, w_name, _, _ = _STAGES[variant["stage"]]
    out = {}
    for scale in variant.get("scales", ()):
        kind, dtype = scale["kind"], scale["dtype"]
        if kind == "per_token":
            out[f"{act_name}_scale"] = ScaleLayout(kind, dtype, [act_shape[0]], f"[rows of {act_name}]")
        elif kind == "per_channel":
            out[f"{w_name}_scale"] = ScaleLayout(
                kind, dtype, list(w_shape[:2]), f"[experts, rows of {w_name}]"
            )
        elif kind == "per_group":
            # [E, N, K / group] over the logical K (packed weights hold weight_pack per element)
            k = w_shape[2] * variant.get("weight_pack", 1)
            out[f"{w_name}_scale"] = ScaleLayout(
                kind,
                dtype,
                [*w_shape[:2], k // scale["group"]],
                f"[experts, rows of {w_name}, K / {scale['group']}]",
            )
        else:  # the spec refuses the others (moegen.core.vocabulary.TEMPLATE_SCALES)
            raise ValueError(f"{variant['name']}: no layout for a {scale['kind']} scale")
    return out


def empty_scales(
    variant: Mapping[str, Any], act: torch.Tensor, w: torch.Tensor
) -> dict[str, torch.Tensor]:
    """torch.empty scale tensors of the declared layouts (compile-only runs: shapes suffice)."""
    return {
        name: torch.empty(s.shape, dtype=getattr(torch, s.dtype), device=act.device)
        for name, s in scale_layouts(variant, tuple(act.shape), tuple(w.shape)).items()
    }


def _check_scales(
    problems: list[str],
    variant: Mapping[str, Any],
    scales: Mapping[str, torch.Tensor],
    act: torch.Tensor,
    w: torch.Tensor,
) -> None:
    """Each declared scale (scale_layouts) is given, float32, contiguous, of its shape."""
    expected = scale_layouts(variant, tuple(act.shape), tuple(w.shape))
    for name in sorted(set(scales) - set(expected)):
        problems.append(f"{name}: this variant's dtype declares no such scale")
    for name, s in expected.items():
        t = scales.get(name)
        if t is None:
            problems.append(f"{name}: missing; the dtype declares a {s.dtype} {s.layout} scale")
            continue
        if _check_tensor(problems, name, t, ndim=len(s.shape), dtypes=(s.dtype,), expected=s.layout):
            if list(t.shape) != s.shape:
                problems.append(f"{name}: expected shape {s.shape} {s.layout}, got {list(t.shape)}")
            if t.device != act.device:
                problems.append(f"{name}: on {t.device}, the operands on {act.device}")


def _blocks(sorted_expert_ids: torch.Tensor) -> int:
    return sorted_expert_ids.numel() if isinstance(sorted_expert_ids, torch.Tensor) else 0


# ---- post-steps --------------------------------------------------------------------------


def reduce_split_k(
    partial: torch.Tensor,
    out: torch.Tensor,
    weighting: Optional[tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Split-K stage 1's post-step: out[t, s] = silu(gate) * up (* routing weight).

    partial is the float32 [tokens * topk, 2 * inter] sum of the K slices (gate columns
    first); weighting is (sorted_token_ids, sorted_weights) when the variant weights rows.
    """
    tokens, topk, inter = out.shape
    gate, up = partial[:, :inter], partial[:, inter:]
    h = torch.nn.functional.silu(gate) * up
    if weighting is not None:
        h = h * routing.weights_by_row(*weighting, tokens=tokens, topk=topk).unsqueeze(1)
    out.copy_(h.view(tokens, topk, inter))


def reduce_topk(slot_rows: torch.Tensor, out: torch.Tensor) -> None:
    """Stage 2's reduce-mode post-step: out[t] = sum over s of slot_rows[t * topk + s].

    slot_rows [tokens * topk, model_dim] holds each slot's weighted row in the output dtype
    (rounded once there, as upstream's reduce mode stores it); the sum runs in float32 and is
    rounded to out's dtype once more."""
    tokens, model_dim = out.shape
    out.copy_(slot_rows.view(tokens, -1, model_dim).float().sum(dim=1))


__all__ = [
    "KernelCall",
    "LaunchPlan",
    "MoeDims",
    "ScaleLayout",
    "TorchStep",
    "empty_scales",
    "reduce_split_k",
    "scale_layouts",
    "reduce_topk",
    "run_plan",
    "unsafe_skip_address_guards",
    "validate",
]
