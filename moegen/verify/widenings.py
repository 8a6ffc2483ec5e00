"""i32 products widened to i64 that feed an address: found in the MLIR, their range evaluated
(moegen.verify.intervals) under the bounds a launch admits."""

from __future__ import annotations

from collections.abc import Mapping

from moegen.verify.intervals import IntRange
from moegen.verify.mlir import _LOAD_OP, MlirKernel, Op
from moegen.verify.verdicts import I32_MAX, I32_MIN, U32_MAX, WideningHazard

_PRODUCT_PATH = ("llvm.add", "llvm.or", "llvm.sub")
_PRODUCTS = ("llvm.mul", "llvm.shl")
_I64_PATH = (
    "llvm.mul",
    "llvm.add",
    "llvm.shl",
    "llvm.or",
    "llvm.sub",
    "llvm.sext",
    "llvm.zext",
)


def find_widenings(
    mlir: MlirKernel,
    bounds: Mapping[str, int] | None = None,
    tensor_names: list[str] | None = None,
) -> list[WideningHazard]:
    """Every i64 value sext/zext'ed from an i32 product that reaches an address."""
    bounds = bounds or {}
    hazards = []
    for op in mlir.ops:
        if op.name not in ("llvm.sext", "llvm.zext") or ": i32 to i64" not in op.text:
            continue
        product = _find_product(mlir, op.operands[0])
        if product is None:
            continue
        sinks = _address_sinks(mlir, op.result)
        if not sinks:
            continue
        ranges = IntRange(mlir, bounds, tensor_names)
        rng = ranges.of(op.operands[0])
        if rng is None:
            max_abs, overflow = None, None
        else:
            lo, hi = rng
            max_abs = max(abs(lo), abs(hi))
            limit_lo, limit_hi = (I32_MIN, I32_MAX) if op.name == "llvm.sext" else (0, U32_MAX)
            overflow = lo < limit_lo or hi > limit_hi
        hazards.append(
            WideningHazard(
                value=op.result,
                line=mlir.line_of(op),
                product=mlir.line_of(product),
                location=mlir.resolve_loc(op.loc),
                sinks=tuple(mlir.line_of(s) for s in sinks),
                max_abs=max_abs,
                can_overflow=overflow,
                value_range=rng,
                factors=tuple(_describe_operand(mlir, ranges, v) for v in product.operands[:2]),
            )
        )
    return hazards


def _describe_operand(mlir: MlirKernel, ranges: "IntRange", value: str) -> str:
    """ "%12 = llvm.mlir.constant(37748736 : i32) : i32 in [37748736, 37748736]"."""
    op = mlir.defs.get(value)
    text = op.text.split(" loc(")[0] if op else value
    rng = ranges.of(value)
    where = "?" if rng is None else f"[{rng[0]}, {rng[1]}]"
    origin = _loaded_from(mlir, value, ranges.names)
    return f"{text} in {where}" + (f" (loaded from {origin})" if origin else "")


def _loaded_from(mlir: MlirKernel, value: str, names: list[str]) -> str | None:
    """The kernel parameter a value was loaded from, when it is a load through a pointer
    rooted at one (e.g. the expert id from SortedExpertIds); `names` are the tensor
    parameters' source names, when known."""
    op = mlir.defs.get(value)
    if op is None or not _LOAD_OP.search(op.name) or not op.operands:
        return None
    root, _ = mlir.pointer_root(op.operands[0])
    if root not in mlir.ptr_params:
        return None
    i = mlir.ptr_params.index(root)
    return names[i] if i < len(names) else f"pointer parameter #{i} ({root})"


def _find_product(mlir: MlirKernel, value: str) -> Op | None:
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        op = mlir.defs.get(v)
        if v in seen or op is None or ": i32" not in op.text:
            continue
        seen.add(v)
        if op.name in _PRODUCTS:
            return op
        if op.name in _PRODUCT_PATH:
            stack.extend(op.operands)
    return None


def _address_sinks(mlir: MlirKernel, value: str) -> list[Op]:
    sinks, stack, seen = [], [value], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        for user in mlir.users.get(v, []):
            if user.name == "llvm.getelementptr" and user.operands[0] != v:
                sinks.append(user)
            elif user.name in ("rocdl.make.buffer.rsrc", "llvm.inttoptr"):
                sinks.append(user)
            elif user.name in _I64_PATH and ": i64" in user.text:
                stack.append(user.result)
    return sinks
