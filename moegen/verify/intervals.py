"""Exact integer ranges of i32 SSA values: the interval evaluator behind the widening hazards."""

from __future__ import annotations

import re
from collections.abc import Mapping

from moegen.verify.mlir import _LOAD_OP, MlirKernel, Op


class IntRange:
    """Exact integer range of an i32 SSA value from constants, thread-id ranges and bounds.

    bounds keys: "block_idx.x|y|z", "thread_idx.x|y|z" (max id) and tensor parameter names or
    "ptr<N>" (max element value loaded from that tensor)."""

    def __init__(self, mlir: MlirKernel, bounds: Mapping[str, int], names: list[str] | None):
        self.mlir, self.bounds, self.names = mlir, bounds, names or []
        self._busy: set[str] = set()

    def of(self, v: str) -> tuple[int, int] | None:
        op = self.mlir.defs.get(v)
        if op is None or v in self._busy:
            return None
        self._busy.add(v)
        try:
            return self._eval(op)
        finally:
            self._busy.discard(v)

    def _bound(self, key: str) -> tuple[int, int] | None:
        return (0, self.bounds[key]) if key in self.bounds else None

    def _eval(self, op: Op) -> tuple[int, int] | None:
        const = re.search(r"llvm\.mlir\.constant\((-?\d+) : i\d+\)", op.text)
        if const:
            return int(const.group(1)), int(const.group(1))
        ids = re.match(r"rocdl\.(workgroup|workitem)\.id\.([xyz])", op.name)
        if ids:
            key = ("block_idx." if ids.group(1) == "workgroup" else "thread_idx.") + ids.group(2)
            rng = re.search(r"range <i32, (\d+), (\d+)>", op.text)
            return self._bound(key) or ((int(rng.group(1)), int(rng.group(2)) - 1) if rng else None)
        if _LOAD_OP.search(op.name) and op.operands:
            root, _ = self.mlir.pointer_root(op.operands[0])
            if root in self.mlir.ptr_params:
                i = self.mlir.ptr_params.index(root)
                name = self.names[i] if i < len(self.names) else None
                return self._bound(name or "") or self._bound(f"ptr<{i}>")
            return None
        args = [self.of(a) for a in op.operands]
        if op.name == "blockarg" or op.name == "llvm.select":
            args = args[1:] if op.name == "llvm.select" else args
            if not args or any(a is None for a in args):
                return None
            return min(a[0] for a in args), max(a[1] for a in args)
        if op.name in ("llvm.sext", "llvm.zext", "llvm.trunc", "llvm.freeze"):
            return args[0] if args else None
        if len(args) != 2 or args[0] is None or args[1] is None:
            return None
        (a0, a1), (b0, b1) = args
        if op.name == "llvm.mul":
            c = [a0 * b0, a0 * b1, a1 * b0, a1 * b1]
            return min(c), max(c)
        if op.name == "llvm.add" or (op.name == "llvm.or" and min(a0, b0) >= 0):
            return a0 + b0, a1 + b1
        if op.name == "llvm.sub":
            return a0 - b1, a1 - b0
        if op.name == "llvm.shl" and b0 == b1 and 0 <= b0 < 64:
            return a0 << b0, a1 << b0
        if op.name in ("llvm.and",) and b0 == b1 >= 0 and a0 >= 0:
            return 0, min(a1, b0)
        if op.name in ("llvm.srem", "llvm.urem") and b0 == b1 > 0:
            return (0 if a0 >= 0 else -(b0 - 1)), b0 - 1
        if op.name in ("llvm.sdiv", "llvm.udiv", "llvm.lshr", "llvm.ashr") and b0 == b1 > 0:
            d = b0 if "div" in op.name else 2**b0
            return a0 // d, a1 // d
        return None
