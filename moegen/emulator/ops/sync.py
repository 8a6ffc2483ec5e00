"""Synchronization: s_barrier, llvm.fence, s_waitcnt and scheduling hints.

Workgroups run in lock-step, so every memory op of every wave has been performed, in program
order, on one coherent memory before the next op runs: fences and waits change no data. What
they change is which accesses the hardware orders between waves, and that is what the LDS race
check (lds.py) tracks: a release fence marks the wave's earlier accesses released, a barrier
publishes what each wave released, an acquire fence makes a wave's later accesses ordered after
what was published. Global memory is not race-checked.

`llvm.fence` (LLVM LangRef: `fence [syncscope("<scope>")] <ordering>`; AMDGPU scopes from
AMDGPUUsage.rst "Memory Scopes"): orderings acquire / release / acq_rel / seq_cst (acq_rel
and seq_cst are both); scopes "workgroup", "agent" and system (no syncscope) order the waves of
a workgroup (a wider scope includes the workgroup); "wavefront" and "singlethread" order
nothing between waves (accepted, no effect on the race check). Any other scope (the "one-as"
variants included) is refused with EmulatorError when the kernel is prepared.
"""

from __future__ import annotations

import numpy as np

from ..errors import EmulatorError, ExecError
from ..execution import WAVE
from . import handles

# mlir LLVM::AtomicOrdering values (the `ordering` attribute of llvm.fence)
ACQUIRE, RELEASE, ACQ_REL, SEQ_CST = 4, 5, 6, 7
FENCE_ORDERINGS = {ACQUIRE: "acquire", RELEASE: "release", ACQ_REL: "acq_rel", SEQ_CST: "seq_cst"}
CROSS_WAVE_SCOPES = ("workgroup", "agent", "")  # "" = system
WAVE_SCOPES = ("wavefront", "singlethread")


def fence_semantics(op) -> tuple[bool, bool, bool]:
    """(acquire, release, orders waves of a workgroup) of an llvm.fence op (OpInfo); raises
    EmulatorError for an ordering or scope the emulator does not model."""
    order = int(op.attrs["ordering"].value)
    scope = str(op.attrs["syncscope"]).strip('"') if "syncscope" in op.attrs else ""
    if order not in FENCE_ORDERINGS:
        raise EmulatorError(
            f"{op.what}: llvm.fence with ordering {order} is not valid LLVM IR (a fence is "
            f"acquire, release, acq_rel or seq_cst)"
        )
    if scope not in CROSS_WAVE_SCOPES + WAVE_SCOPES:
        raise EmulatorError(
            f"{op.what}: llvm.fence syncscope({scope!r}) is not modelled; modelled scopes: "
            f"workgroup, agent, system (none), wavefront, singlethread"
        )
    acquire = order in (ACQUIRE, ACQ_REL, SEQ_CST)
    release = order in (RELEASE, ACQ_REL, SEQ_CST)
    return acquire, release, scope in CROSS_WAVE_SCOPES


def _active_waves(b) -> tuple[np.ndarray, np.ndarray]:
    """(batch workgroup slot, wave index) of every wave with an active lane."""
    m = b.mask.reshape(-1, b.lanes_per_wg // WAVE, WAVE).any(2)
    return np.nonzero(m)


@handles("llvm.fence")
def _fence(op, rt):
    acquire, release, cross_wave = fence_semantics(op)
    if not cross_wave:
        return lambda: None

    def fence():
        b = rt.batch
        wg, wave = _active_waves(b)
        if release:
            b.lds.release(wg, wave)
        if acquire:
            b.lds.acquire(wg, wave)

    return fence


@handles("rocdl.s.barrier", "rocdl.barrier")
def _barrier(op, rt):
    def barrier():
        b = rt.batch
        m = b.mask.reshape(-1, b.lanes_per_wg)
        alive = b.alive.reshape(m.shape)
        reached = m.any(1)
        partial = reached & (m != alive).any(1)
        if partial.any():
            g = int(np.nonzero(partial)[0][0])
            raise ExecError(
                f"{op.what}: s_barrier reached by only part of workgroup "
                f"{tuple(int(v) for v in b.wgs[g])} (a divergent barrier)"
            )
        b.lds.barrier(np.nonzero(reached)[0])  # lock-step: all earlier ops already ran

    return barrier


@handles(
    "rocdl.s.waitcnt",
    "rocdl.sched.barrier",
    "rocdl.s.setprio",
    "rocdl.sched.group.barrier",
    "rocdl.s.nop",
    "rocdl.s.sleep",
    "llvm.intr.assume",
    "rocdl.iglp.opt",
)
def _no_op(op, rt):
    """Waits and scheduling hints: no effect under lock-step execution (every earlier memory
    op has completed)."""
    return lambda *a: None
