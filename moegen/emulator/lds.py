"""LDS of the workgroups of one batch, with the optional race check.

Data: `bytes[wg, addr]`, accessed in place and bounds-checked (IllegalAddress). Under lock-step
execution every access is performed when its op runs, so the data never depends on fences.

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

from .errors import IllegalAddress, LdsRace


class Lds:
    """LDS bytes[nwg, size] of one batch (addresses: 32-bit byte offsets from the workgroup's
    LDS base); with race_check, the happens-before shadow described in the module docstring."""

    def __init__(self, nwg: int, size: int, race_check: bool, waves: int = 1) -> None:
        self.size = size
        self.bytes = np.zeros((nwg, size), np.uint8)
        self.race_check = race_check
        if race_check:
            self.clock = 1
            self.writer = np.full((nwg, size), -1, np.int16)
            self.wstamp = np.zeros((nwg, size), np.int64)
            self.rstamp = np.zeros((nwg, waves, size), np.int64)
            self.released = np.ones((nwg, waves), np.int64)
            self.at_barrier = np.ones((nwg, waves), np.int64)
            self.synced = np.ones((nwg, waves, waves), np.int64)

    # ---- synchronization events (ops/sync.py) -------------------------------------------

    def release(self, wg: np.ndarray, wave: np.ndarray) -> None:
        """Waves (wg[i], wave[i]) executed a release fence of workgroup scope or wider."""
        if self.race_check and len(wg):
            self.clock += 1
            self.released[wg, wave] = self.clock

    def barrier(self, wgs: np.ndarray) -> None:
        """Every wave of the workgroups (batch slots) `wgs` reached an s_barrier."""
        if self.race_check and len(wgs):
            self.clock += 1
            self.at_barrier[wgs] = self.released[wgs]

    def acquire(self, wg: np.ndarray, wave: np.ndarray) -> None:
        """Waves (wg[i], wave[i]) executed an acquire fence of workgroup scope or wider."""
        if self.race_check and len(wg):
            self.clock += 1
            self.synced[wg, wave] = np.maximum(self.synced[wg, wave], self.at_barrier[wg])

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

    @staticmethod
    def _race(kind, what, where, lane, wg, wave, other, other_kind, addr):
        raise LdsRace(
            f"LDS race in {what}: {kind} of LDS byte 0x{addr:x} by wave {wave} of workgroup batch "
            f"slot {wg} ({where(lane)}); wave {other} {other_kind} it, and no release fence + "
            f"s_barrier + acquire fence (gpu.barrier) orders the two accesses"
        )

    def _unordered(self, rows, mine, other, stamp):
        """Accesses of wave `other` with `stamp` not ordered before wave `mine`'s access now."""
        o = np.maximum(other, 0)
        return (other >= 0) & (other != mine) & (stamp >= self.synced[rows, mine, o])

    def read(self, wg, wave, addr, nbytes, active, what, where) -> np.ndarray:
        lanes, rows, cols = self._index(wg, addr, nbytes, active, what, where)
        if self.race_check and lanes.size:
            mine = self._waves(wave, lanes, cols.shape)
            w = self.writer[rows, cols].astype(np.int64)
            bad = self._unordered(rows, mine, w, self.wstamp[rows, cols])
            if bad.any():
                i, j = np.argwhere(bad)[0]
                self._race(
                    "read", what, where, int(lanes[i]), int(rows[i, j]), int(mine[i, j]),
                    int(w[i, j]), "wrote", int(cols[i, j]),
                )  # fmt: skip
            self.rstamp[rows, mine, cols] = self.clock
        out = np.zeros((np.asarray(addr).size, nbytes), np.uint8)
        out[lanes] = self.bytes[rows, cols]
        return out

    def write(self, wg, wave, addr, data, active, what, where) -> None:
        nbytes = data.shape[-1]
        lanes, rows, cols = self._index(wg, addr, nbytes, active, what, where)
        if self.race_check and lanes.size:
            mine = self._waves(wave, lanes, cols.shape)
            self._check_write(rows, cols, mine, lanes, what, where)
            self.writer[rows, cols] = mine
            self.wstamp[rows, cols] = self.clock
            again = self.writer[rows, cols] != mine  # two waves wrote one byte in this op
            if again.any():
                i, j = np.argwhere(again)[0]
                self._race(
                    "write", what, where, int(lanes[i]), int(rows[i, j]), int(mine[i, j]),
                    int(self.writer[rows[i, j], cols[i, j]]), "wrote (in the same op)",
                    int(cols[i, j]),
                )  # fmt: skip
        self.bytes[rows, cols] = data[lanes]

    def _check_write(self, rows, cols, mine, lanes, what, where) -> None:
        w = self.writer[rows, cols].astype(np.int64)
        bad = self._unordered(rows, mine, w, self.wstamp[rows, cols])
        if bad.any():
            i, j = np.argwhere(bad)[0]
            self._race(
                "write", what, where, int(lanes[i]), int(rows[i, j]), int(mine[i, j]),
                int(w[i, j]), "wrote", int(cols[i, j]),
            )  # fmt: skip
        nw = self.rstamp.shape[1]
        readers = np.arange(nw)
        rs = self.rstamp[rows[..., None], readers, cols[..., None]]  # [lanes, bytes, waves]
        sync = self.synced[rows[..., None], mine[..., None], readers]
        bad = (rs > 0) & (readers != mine[..., None]) & (rs >= sync)
        if bad.any():
            i, j, r = np.argwhere(bad)[0]
            self._race(
                "write", what, where, int(lanes[i]), int(rows[i, j]), int(mine[i, j]), int(r),
                "read", int(cols[i, j]),
            )  # fmt: skip

    @staticmethod
    def _waves(wave, lanes, shape) -> np.ndarray:
        return np.broadcast_to(
            np.asarray(wave)[lanes][:, None] if np.ndim(wave) else wave, shape
        ).astype(np.int64)
