"""Op handlers, one module per op family.

A handler factory takes the op's static description (`OpInfo`) and the `Runtime` once, when a
kernel is prepared, and returns the closure that executes the op on a batch: it receives the
input values and returns the result value (or None). Families register themselves with
`@handles(...)`; `llvm.call_intrinsic` dispatches on the intrinsic name through `@intrinsic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..types import Ty

Factory = Callable[["OpInfo", object], Callable]
HANDLERS: dict[str, Factory] = {}
PREFIX_HANDLERS: dict[str, Factory] = {}
INTRINSICS: dict[str, Factory] = {}


@dataclass
class OpInfo:
    """What a handler factory knows about an op. computes_buffer_offset: the op's result flows
    (through integer ops and block arguments) into a buffer op's offset operand. folded_addend:
    for a buffer op whose voffset is `llvm.add x, C` with a constant C (the backend may fold C
    into the instruction's offset field), C; else 0."""

    name: str
    loc: str
    attrs: dict
    in_tys: list[Ty]
    out_tys: list[Ty]
    computes_buffer_offset: bool = False
    folded_addend: int = 0

    @property
    def out_ty(self) -> Ty | None:
        return self.out_tys[0] if self.out_tys else None

    @property
    def what(self) -> str:
        return f"{self.name} @ {self.loc}"


def handles(*names: str, prefix: bool = False):
    def register(factory: Factory) -> Factory:
        for n in names:
            (PREFIX_HANDLERS if prefix else HANDLERS)[n] = factory
        return factory

    return register


def intrinsic(*prefixes: str):
    def register(factory: Factory) -> Factory:
        for p in prefixes:
            INTRINSICS[p] = factory
        return factory

    return register


def lookup(name: str, intrin: str | None = None) -> Factory | None:
    if name == "llvm.call_intrinsic":
        return next((f for p, f in INTRINSICS.items() if intrin and intrin.startswith(p)), None)
    if name in HANDLERS:
        return HANDLERS[name]
    return next((f for p, f in PREFIX_HANDLERS.items() if name.startswith(p)), None)


# Importing the op families registers their handlers in the tables above.
from . import aggregate, floating, integer, memory_ops, mfma, rocdl_ops, sync  # noqa: E402,F401
