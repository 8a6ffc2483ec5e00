"""Evaluate the host launcher's arithmetic on a launch operand (grid, block, dynamic LDS size,
kernel arguments): the backward slice of the operand through integer ops, evaluated once per
launch with the kernel's own op handlers on scalars.

Only side-effect-free ops whose value is fixed by the launcher's arguments are evaluated
(HOST_OPS: integer arithmetic, division, comparisons, select, casts, struct field reads);
anything else (a load, a call, a value from another block) raises EmulatorError naming the op.
Division follows LLVM LangRef: udiv/sdiv/urem/srem by zero, and sdiv/srem of INT_MIN by -1,
are undefined behaviour, and `exact` division with a remainder is poison; the emulator refuses
all of them (ExecError from the integer handlers).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .errors import EmulatorError
from .ops import OpInfo, lookup
from .types import parse_type

HOST_OPS = {
    f"llvm.{n}"
    for n in (
        "mlir.constant mlir.undef mlir.poison mlir.zero freeze "
        "add sub mul udiv sdiv urem srem and or xor shl lshr ashr "
        "icmp select zext sext trunc extractvalue "
        "intr.umin intr.umax intr.smin intr.smax"
    ).split()
}


class HostEvaluator:
    """Values of the host function's SSA values, given its arguments' values (`known`)."""

    def __init__(self, host_name: str, known: dict, location, attributes) -> None:
        self.host_name = host_name
        self.known = dict(known)
        self._location, self._attributes = location, attributes
        self.rt = SimpleNamespace(  # what the integer handlers read: one always-active lane
            check_overflow=False, batch=SimpleNamespace(mask=np.ones((), bool))
        )

    def __call__(self, v):
        if v in self.known:
            return self.known[v]
        owner = v.owner
        if not hasattr(owner, "name"):
            raise EmulatorError(
                f"host launcher {self.host_name}: a launch operand depends on a block argument "
                f"that is not a launcher parameter (control flow in the launcher); only "
                f"straight-line launcher arithmetic is evaluated"
            )
        loc = self._location(owner)
        if owner.name not in HOST_OPS:
            raise EmulatorError(
                f"host launcher {self.host_name}: launch operand computed by {owner.name} at "
                f"{loc}, which the emulator does not evaluate on the host (evaluated: integer "
                f"arithmetic, division, comparisons, select, casts, extractvalue)"
            )
        info = OpInfo(
            owner.name,
            loc,
            self._attributes(owner),
            [parse_type(str(x.type)) for x in owner.operands],
            [parse_type(str(r.type)) for r in owner.results],
        )
        fn = lookup(owner.name)(info, self.rt)
        args = [self(x) for x in owner.operands]
        try:
            r = fn(*args)
        except EmulatorError as e:
            raise type(e)(f"host launcher {self.host_name}: {e}") from e
        self.known[v] = r
        return r
