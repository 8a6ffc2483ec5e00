"""The verdicts of the kernel audit: how the expert weights are addressed, and risky i32 math.

Addressing of the weight tensor (the caller names it: ordinal among the kernel's global pointer
parameters, i.e. its fx.Tensor parameters in declaration order, or the parameter's name):

    per_expert    the weight's buffer resource (V#) base is the weight pointer advanced by a
                  64-bit offset that depends on a value loaded from memory (the expert id), so
                  the 32-bit per-lane offsets only span one expert.
    whole_tensor  the V# base is the weight pointer itself and a loaded value (the expert id)
                  reaches the 32-bit offset of an access through it.
    undetermined  neither: e.g. the expert offset was lost (rocdl.get_buffer_rsrc on an already
                  offset buffer pointer drops it), or the weight is not read through a V#.

Two independent views decide it and must agree (a disagreement is a failure):
    mlir  LLVM-dialect MLIR (*_reconcile_unrealized_casts.mlir): SSA def-use chains.
    isa   final AMDGCN assembly (*_final_isa.s): SGPR provenance + load taint through the code.

Hazard: an i64 value made by sign/zero-extending an i32 product (mul/shl, possibly under
add/or/sub) that feeds an address (GEP index, V# base, inttoptr). The product wraps at 2^31
before it is widened. Every such widening is reported with its source location; with bounds
(max values of loaded tensor elements and block/thread ids) the product's range is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

I32_MIN, I32_MAX, U32_MAX = -(2**31), 2**31 - 1, 2**32 - 1


class Addressing(str, Enum):
    WHOLE_TENSOR = "whole_tensor"
    PER_EXPERT = "per_expert"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class ViewVerdict:
    """The addressing one view of the compiled kernel shows, with the lines that show it."""

    view: str  # "mlir" | "isa"
    addressing: Addressing
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class WideningHazard:
    """An i32 product widened to i64 that feeds an address."""

    value: str  # the i64 SSA value, e.g. "%29"
    line: str  # the sext/zext line
    product: str  # the i32 llvm.mul/shl line it widens
    location: str  # source location of the widening, "file:line:col <- caller:line:col"
    sinks: tuple[str, ...]  # address ops it reaches
    max_abs: int | None  # largest |value| of the widened operand under the bounds, if known
    can_overflow: bool | None  # None: not enough bounds to tell
    value_range: tuple[int, int] | None = None  # [lo, hi] of the widened i32 operand
    # the product's operands: "%12 = <op> in [lo, hi]" (range "?" where unknown)
    factors: tuple[str, ...] = ()

    def describe(self) -> str:
        """What overflows, for a failure message: the widening, the i32 product and its
        operands with their ranges, the widened range against the i32 limit, where, and
        the fix."""
        limit = U32_MAX if "llvm.zext" in self.line else I32_MAX
        rng = "unknown" if self.value_range is None else "[{}, {}]".format(*self.value_range)
        return (
            f"i32 product widened to i64 overflows: {self.line.split('  [')[0]} widens "
            f"{self.product.split('  [')[0]}, operands: "
            + "; ".join(self.factors)
            + f". The widened value ranges over {rng}, past the i32 limit {limit}. "
            f"Computed at {self.location}; widen the factors to i64 before multiplying "
            "(fx.Int64(a) * fx.Int64(b))"
        )


@dataclass(frozen=True)
class KernelAudit:
    kernel: str
    dump_dir: Path
    weight_ptr: int
    weight_name: str | None
    expected: Addressing | None
    addressing: Addressing
    views: tuple[ViewVerdict, ...]
    hazards: tuple[WideningHazard, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No view conflict, the expected addressing (if given) holds, no known overflow."""
        return not self.problems
