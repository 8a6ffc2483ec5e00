"""LDS of the workgroups of one batch, with the optional race check.

Data: `bytes[wg, addr]`, accessed in place and bounds-checked (IllegalAddress). Under lock-step
execution every access is performed when its op runs, so the data never depends on fences.
LDS is not cleared when a workgroup starts on hardware (it holds whatever the CU's previous
workgroup left), so it starts as UNWRITTEN bytes here, not zeros: 0xFF is NaN in bf16, fp16
and f32 and -1 in integers, so a kernel that computes on LDS it never wrote poisons its
output and fails its verdict, where zeros would often pass (a zero row adds nothing).

Race check (`race_check=True`): a happens-before model of the AMDGPU memory model for LDS
between the waves of one workgroup. Two accesses to one LDS byte by different waves, at least
one a write, race unless the earlier one is ordered before the later one by the pairing

    wave A: access; fence release (workgroup scope or wider); s_barrier
    wave B: s_barrier; fence acquire (workgroup scope or wider); access

which is what FlyDSL's `gpu.barrier` lowers to. A bare `s_barrier` orders nothing: on gfx942
and gfx950 the backend inserts no wait before it (targets with back-off barriers, LLVM
SIInsertWaitcnts.cpp), and LDS operations of different waves may be reordered (LLVM
AMDGPUUsage.rst, "Memory Model GFX942": the LDS has several request queues shared by the SIMDs
of a CU); the release fence is what emits `s_waitcnt lgkmcnt(0)` before the barrier.

Bookkeeping: a batch-wide clock stamps every access; per byte the last writer wave and its
stamp, and per (wave, byte) the stamp of that wave's last read. Wave A's release fence records
`released[wg, A] = clock` (its accesses stamped below are released); a barrier snapshots
`at_barrier[wg, :] = released[wg, :]`; wave B's acquire fence sets `synced[wg, B, :]` to that
snapshot. An earlier access of wave A with stamp s is ordered before wave B's access iff
s < synced[wg, B, A]. Stamps start at 1, synced at 1, so untouched bytes (stamp 0) never race.
"""

from __future__ import annotations

import numpy as np

from .errors import EmulatorError, IllegalAddress, LdsRace

UNWRITTEN = 0xFF  # the emulator's value of an LDS byte no wave has written (module docstring)


class Lds:
    """LDS bytes[nwg, size] of one batch (addresses: 32-bit byte offsets from the workgroup's
    LDS base); with race_check, the happens-before shadow described in the module docstring,
    kept flat per (workgroup, byte) for speed: writer[f], wstamp[f], rstamp[f, wave] with
    f = wg * size + addr, and synced[wg * waves + wave, other wave]."""

    def __init__(self, nwg: int, size: int, race_check: bool, waves: int = 1) -> None:
        self.size = size
        self.bytes = np.full((nwg, size), UNWRITTEN, np.uint8)
        self.race_check = race_check
        if race_check:
            self.waves = waves
            self.clock = 1
            self.writer = np.full(nwg * size, -1, np.int8 if waves < 128 else np.int16)
            self.wstamp = np.zeros(nwg * size, np.int32)
            self.rstamp = np.zeros((nwg * size, waves), np.int32)
            self.released = np.ones((nwg, waves), np.int32)
            self.at_barrier = np.ones((nwg, waves), np.int32)
            self.synced = np.ones((nwg * waves, waves), np.int32)

    # ---- synchronization events (ops/sync.py) -------------------------------------------

    def _tick(self) -> int:
        self.clock += 1
        if self.clock >= 2**31 - 1:
            raise EmulatorError("LDS race check: more than 2^31 synchronization events")
        return self.clock

    def release(self, wg: np.ndarray, wave: np.ndarray) -> None:
        """Waves (wg[i], wave[i]) executed a release fence of workgroup scope or wider."""
        if self.race_check and len(wg):
            self.released[wg, wave] = self._tick()

    def barrier(self, wgs: np.ndarray) -> None:
        """Every wave of the workgroups (batch slots) `wgs` reached an s_barrier."""
        if self.race_check and len(wgs):
            self._tick()
            self.at_barrier[wgs] = self.released[wgs]

    def acquire(self, wg: np.ndarray, wave: np.ndarray) -> None:
        """Waves (wg[i], wave[i]) executed an acquire fence of workgroup scope or wider."""
        if self.race_check and len(wg):
            self._tick()
            k = np.asarray(wg) * self.waves + np.asarray(wave)
            self.synced[k] = np.maximum(self.synced[k], self.at_barrier[wg])

    # ---- accesses ----------------------------------------------------------------------

    def _index(self, wg, addr, nbytes, active, what, where):
        addr = np.asarray(addr, np.uint64).reshape(-1)
        bad = active & (addr + np.uint64(nbytes) > np.uint64(self.size))
        if bad.any():
            k = int(np.nonzero(bad)[0][0])
            raise IllegalAddress(
                f"LDS access out of range in {what}: {int(bad.sum())} active lane(s); first: {where(k)} "
                f"LDS addr=0x{int(addr[k]):x} size={nbytes}, workgroup LDS size = {self.size} bytes"
            )
        lanes = np.nonzero(active)[0]
        cols = (addr[lanes][:, None] + np.arange(nbytes, dtype=np.uint64)).astype(np.int64)
        rows = np.broadcast_to(np.asarray(wg)[..., None] if np.ndim(wg) else wg, (addr.size, 1))[
            lanes
        ]
        return lanes, np.broadcast_to(rows, cols.shape), cols

    def _shadow(self, wave, lanes, rows, cols):
        """Flat views of one access: (byte index f, accessing wave, synced row) per byte."""
        f = (rows * self.size + cols).reshape(-1)
        mine = (
            np.broadcast_to(np.asarray(wave)[lanes][:, None] if np.ndim(wave) else wave, cols.shape)
            .reshape(-1)
            .astype(np.int64)
        )
        return f, mine, rows.reshape(-1) * self.waves + mine

    def _race(self, kind, what, where, lanes, nbytes, k, mine, other, other_kind, f):
        lane = int(lanes[k // nbytes])
        raise LdsRace(
            f"LDS race in {what}: {kind} of LDS byte 0x{int(f[k]) % self.size:x} by wave "
            f"{int(mine[k])} of workgroup batch slot {int(f[k]) // self.size} ({where(lane)}); "
            f"wave {int(other)} {other_kind} it, and no release fence + s_barrier + acquire "
            f"fence (gpu.barrier) orders the two accesses"
        )

    def _check_writer(self, kind, what, where, lanes, nbytes, f, mine, srow) -> None:
        """A byte written by another wave since what this wave has synchronized with."""
        w = self.writer[f].astype(np.int64)
        other = w >= 0
        bad = other & (w != mine)
        if bad.any():
            bad &= self.wstamp[f] >= self.synced[srow, np.where(other, w, 0)]
            if bad.any():
                k = int(np.argmax(bad))
                self._race(kind, what, where, lanes, nbytes, k, mine, w[k], "wrote", f)

    def read(self, wg, wave, addr, nbytes, active, what, where) -> np.ndarray:
        lanes, rows, cols = self._index(wg, addr, nbytes, active, what, where)
        if self.race_check and lanes.size:
            f, mine, srow = self._shadow(wave, lanes, rows, cols)
            self._check_writer("read", what, where, lanes, nbytes, f, mine, srow)
            self.rstamp[f, mine] = self.clock
        out = np.zeros((np.asarray(addr).size, nbytes), np.uint8)
        out[lanes] = self.bytes[rows, cols]
        return out

    def write(self, wg, wave, addr, data, active, what, where) -> None:
        nbytes = data.shape[-1]
        lanes, rows, cols = self._index(wg, addr, nbytes, active, what, where)
        if self.race_check and lanes.size:
            f, mine, srow = self._shadow(wave, lanes, rows, cols)
            self._check_writer("write", what, where, lanes, nbytes, f, mine, srow)
            rs = self.rstamp[f]  # [bytes, waves]: each wave's last read of the byte
            bad = rs >= self.synced[srow]
            bad[np.arange(len(f)), mine] = False  # a wave's own reads are ordered
            bad &= rs > 0
            if bad.any():
                k, r = np.argwhere(bad)[0]
                self._race("write", what, where, lanes, nbytes, k, mine, r, "read", f)
            self.writer[f] = mine
            self.wstamp[f] = self.clock
            again = self.writer[f] != mine  # two waves wrote one byte in this op
            if again.any():
                k = int(np.argmax(again))
                other = self.writer[f[k]]
                self._race(
                    "write", what, where, lanes, nbytes, k, mine, other, "wrote (in the same op)", f
                )
        self.bytes[rows, cols] = data[lanes]
