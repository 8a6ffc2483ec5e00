"""CPU emulator for FlyDSL AMD GPU kernels (gfx942 / gfx950).

Executes the final LLVM-dialect MLIR that FlyDSL dumps (`*_reconcile_unrealized_casts.mlir`)
with AMD semantics: waves of 64 lanes with EXEC masks, LDS and barriers, buffer resources with
32-bit offsets and num_records range checks, MFMA lane layouts, atomics, fp8/bf16/f16
conversions. Memory accesses outside registered allocations raise IllegalAddress. Where
sources disagree on a rule the result depends on, the emulator executes one reading and records
the lane (`Emulator.ambiguous_accesses`); what it follows, refuses or records, and the source of
each rule: README.md in this package (the fidelity table).

    emu = Emulator(path, arch="gfx942")
    emu.launch("kernel_0", [x, w, out, 17])   # the @flyc.jit launcher's runtime args
"""

from .diagnostics import AmbiguousAccess, Overflow, OverflowKind
from .emulator import Emulator
from .errors import EmulatorError, ExecError, IllegalAddress, LdsRace, UnsupportedOps
from .throughput import Throughput, measure

__all__ = [
    "AmbiguousAccess",
    "Emulator",
    "EmulatorError",
    "ExecError",
    "IllegalAddress",
    "LdsRace",
    "Overflow",
    "OverflowKind",
    "UnsupportedOps",
    "Throughput",
    "measure",
]
