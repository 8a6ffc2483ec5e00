"""Errors the emulator raises. Every message names the op and its source location."""


class EmulatorError(Exception):
    """Base class: the kernel cannot be emulated, or it did something a GPU would not allow."""


class UnsupportedOps(EmulatorError):
    """The kernel uses ops the emulator does not model (raised when a kernel is prepared,
    before anything runs; lists every unknown op with its source locations)."""


class IllegalAddress(EmulatorError):
    """An active lane touched memory outside every registered allocation (or outside the
    workgroup's LDS). The access is not performed."""


class ExecError(EmulatorError):
    """A rule of the execution model was broken: a cross-lane op or a barrier under a partial
    EXEC mask, a division by zero in an active lane, an unmodelled operand value."""


class LdsRace(EmulatorError):
    """Two waves of one workgroup touched the same LDS byte between two barriers and at least
    one of them wrote it."""
