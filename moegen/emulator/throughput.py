"""Throughput of the emulator on one launch: MFMAs and bytes moved per second."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    seconds: float
    mfma: int
    bytes_loaded: int
    bytes_stored: int
    ops: int

    @property
    def mfma_per_s(self) -> float:
        return self.mfma / self.seconds

    @property
    def bytes_per_s(self) -> float:
        return (self.bytes_loaded + self.bytes_stored) / self.seconds

    def __str__(self) -> str:
        return (
            f"{self.seconds:.3f} s, {self.mfma} wave-MFMAs ({self.mfma_per_s:,.0f}/s), "
            f"{self.bytes_loaded + self.bytes_stored:,} bytes ({self.bytes_per_s / 1e6:,.1f} MB/s), "
            f"{self.ops:,} op executions"
        )


def measure(emulator, kernel: str, runtime_args: list, **launch_kwargs) -> Throughput:
    """Launch once (closures prepared beforehand, not timed) and report the rates."""
    emulator.prepare(kernel)
    before = dict(emulator.stats)
    t0 = time.perf_counter()
    emulator.launch(kernel, runtime_args, **launch_kwargs)
    dt = time.perf_counter() - t0
    d = {k: emulator.stats[k] - before.get(k, 0) for k in emulator.stats}
    return Throughput(dt, d["mfma"], d["bytes_loaded"], d["bytes_stored"], d["ops"])
