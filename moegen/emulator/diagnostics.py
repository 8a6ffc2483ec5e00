"""Diagnostics the emulator records while it runs (it raises errors for what a GPU would not
allow; these are what a GPU allows but the emulator cannot, or should not silently, vouch for).

* `AmbiguousAccess`: a buffer access whose result depends on a rule the sources disagree on
  (whether `voffset + inst_offset` wraps at 2^32; see memory.py). Collected in
  `Emulator.ambiguous_accesses`; a verdict that depends on such a lane is inconclusive.
* `Overflow`: one line of the optional overflow report (`Emulator(check_overflow=True)`):
  "signed-overflow" (an i32 add/sub/mul left the signed range) or "unsigned-wrap" (an i32
  add/sub/mul/shl that computes a buffer offset left [0, 2^32): the offset wrapped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OverflowKind = Literal["signed-overflow", "unsigned-wrap"]


@dataclass(frozen=True)
class AmbiguousAccess:
    """One lane of one buffer op whose `voffset + inst_offset` crosses 2^32.

    lane: the thread's index in its workgroup (workitem id x + y*bx + z*bx*by).
    wrapped: the byte offset (soffset included) under the mod-2^32 reading, which the emulator
    executes; unwrapped: the offset without the wrap (>= 2^32: out of range, so the load would
    return 0 / the store would be dropped)."""

    op: str
    location: str
    workgroup: tuple[int, ...]
    lane: int
    wrapped: int
    unwrapped: int

    def __str__(self) -> str:
        return (
            f"{self.op} at {self.location}, workgroup {self.workgroup} lane {self.lane}: "
            f"voffset + inst_offset crosses 2^32; offset 0x{self.wrapped:x} if it wraps "
            f"(executed), 0x{self.unwrapped:x} if it does not (out of range)"
        )


@dataclass
class Overflow:
    """One report line: every active lane of one op (source location) that overflowed or
    wrapped (`lanes` of them), with the first such lane (its workgroup and its index in the
    workgroup) and its exact, unwrapped value as an example."""

    kind: OverflowKind
    op: str
    location: str
    workgroup: tuple[int, ...]
    lane: int
    value: int
    lanes: int = 0
    note: str = ""

    @property
    def key(self) -> str:
        """'file.py:line llvm.op [kind]' (+ a note): the key of `Emulator.overflows`."""
        return f"{self.location} {self.op} [{self.kind}]" + (f" [{self.note}]" if self.note else "")
