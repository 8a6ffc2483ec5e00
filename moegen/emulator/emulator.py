"""The public entry point: `Emulator(mlir).launch(kernel, runtime_args)`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import execution
from .diagnostics import AmbiguousAccess, Overflow
from .errors import EmulatorError
from .execution import WAVE, Batch, Runtime
from .frontend import Kernel, Module, attributes, location
from .host_eval import HostEvaluator
from .abi import host_values
from .lds import Lds
from .memory import Memory
from .types import parse_type

WgFilter = Callable[[int, int, int], bool] | Iterable[tuple[int, int, int]] | None


class Emulator:
    """Runs the kernels of one FlyDSL LLVM-dialect MLIR dump on the CPU with AMD semantics.

    mlir_path_or_text: a `*_reconcile_unrealized_casts.mlir` path or its text.
    arch: "gfx942" or "gfx950" (fp8 format of conversions / MFMA).
    check_overflow: report, per op (source line), i32 add/sub/mul results that leave the signed
        range ("signed-overflow") and i32 add/sub/mul/shl results that compute a buffer offset
        and leave [0, 2^32) ("unsigned-wrap"): `.overflow_report`, summarized in `.overflows`.
    race_check: raise LdsRace when two waves touch one LDS byte (one of them writing) without a
        release fence + s_barrier + acquire fence between them (lds.py).
    Memory touched by kernels must be registered: `launch` registers its tensor arguments;
    with `launch_raw` use `.mem.add_tensor`.
    `.ambiguous_accesses` accumulates, over launches, every buffer access lane whose result
    depends on whether `voffset + inst_offset` wraps at 2^32 (see diagnostics.AmbiguousAccess).
    """

    def __init__(
        self,
        mlir_path_or_text: str | Path,
        arch: str = "gfx942",
        check_overflow: bool = False,
        race_check: bool = False,
    ) -> None:
        if arch not in ("gfx942", "gfx950"):
            raise EmulatorError(f"arch {arch!r} not supported (gfx942, gfx950)")
        self.module = Module(mlir_path_or_text)
        self.mem = Memory()
        self.rt = Runtime(arch, self.mem, check_overflow, race_check)
        self.ambiguous_accesses: list[AmbiguousAccess] = self.rt.ambiguous_accesses
        self.rt.lds_offsets, self._lds_static, self._lds_dyn_start = self.module.lds_layout()
        self._kernels: dict[str, Kernel] = {}

    @property
    def stats(self) -> dict[str, int]:
        return self.rt.stats

    @property
    def overflow_report(self) -> list[Overflow]:
        """With check_overflow: one Overflow per (kind, op), in the order first seen."""
        return list(self.rt.overflow_report.values())

    @property
    def overflows(self) -> dict[str, int]:
        """'file.py:line llvm.op [kind]' -> number of active lanes that overflowed / wrapped."""
        return {o.key: o.lanes for o in self.rt.overflow_report.values()}

    @property
    def kernel_names(self) -> list[str]:
        return sorted(self.module.kernels)

    def prepare(self, kernel: str) -> Kernel:
        """Build (once) the closures of a kernel; raises UnsupportedOps for unknown ops."""
        if kernel not in self._kernels:
            self._kernels[kernel] = self.module.prepare(kernel, self.rt)
        return self._kernels[kernel]

    def marshal(self, kernel: str, runtime_args: list) -> tuple[list, tuple, tuple, int]:
        """Launcher runtime args (torch CPU tensors, ints, floats; in launcher order, without
        Constexpr args and the stream) -> (kernel params, grid, block, dynamic LDS bytes).
        Registers every tensor's storage as an allocation."""
        import torch

        mod = self.module
        with mod.ctx:
            host, lop = mod.launch_op(kernel)
            hargs = list(host.regions[0].blocks[0].arguments)
            htys = [parse_type(str(a.type)) for a in hargs]
            for k, a in enumerate(runtime_args):
                if isinstance(a, torch.Tensor):
                    self.mem.add_tensor(a, f"arg{k} {a.dtype} {tuple(a.shape)}")
            vals = host_values(runtime_args, htys)
            host_name = str(host.attributes["sym_name"]).strip('"')
            value = HostEvaluator(host_name, dict(zip(hargs, vals)), location, attributes)

            seg = [int(x) for x in lop.attributes["operandSegmentSizes"]]
            opnds = list(lop.operands)
            pos = seg[0]
            grid = _dims(host_name, "grid", [value(v) for v in opnds[pos : pos + 3]])
            block = _dims(host_name, "block", [value(v) for v in opnds[pos + 3 : pos + 6]])
            dyn_pos = sum(seg[:10])
            dyn = int(value(opnds[dyn_pos])) if seg[10] else 0
            pos = sum(seg[:11])
            params = [value(v) for v in opnds[pos : pos + seg[11]]]
        return params, grid, block, dyn

    def launch(
        self,
        kernel: str,
        runtime_args: list,
        only_wgs: WgFilter = None,
        max_lanes: int = 1 << 15,
        wg_batch: int | None = None,
    ) -> tuple[tuple, tuple]:
        """Launch like the FlyDSL @flyc.jit launcher would. Returns (grid, block)."""
        params, grid, block, dyn = self.marshal(kernel, runtime_args)
        self.launch_raw(
            kernel,
            params,
            grid,
            block,
            dynamic_lds=dyn,
            only_wgs=only_wgs,
            max_lanes=max_lanes,
            wg_batch=wg_batch,
        )
        return grid, block

    def launch_raw(
        self,
        kernel: str,
        params: list,
        grid: tuple,
        block: tuple,
        dynamic_lds: int = 0,
        only_wgs: WgFilter = None,
        max_lanes: int = 1 << 15,
        wg_batch: int | None = None,
    ) -> None:
        """Launch with explicit kernel parameters (ints for pointers and integers, tuples for
        structs). only_wgs: a predicate (x, y, z) -> bool or a collection of (x, y, z) ids.
        Workgroups run in lock-step batches of up to max_lanes lanes (or wg_batch workgroups)."""
        k = self.prepare(kernel)
        if len(params) != len(k.params):
            raise EmulatorError(
                f"{kernel}: {len(params)} parameters given, the kernel takes {len(k.params)}"
            )
        params = [
            p if isinstance(p, (tuple, np.ndarray)) else _scalar(p, t)
            for p, t in zip(params, k.param_tys)
        ]
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        nthreads = block[0] * block[1] * block[2]
        lanes_per_wg = -(-nthreads // WAVE) * WAVE
        keep = _wg_filter(only_wgs)
        wgs = np.array(
            [
                (x, y, z)
                for z in range(grid[2])
                for y in range(grid[1])
                for x in range(grid[0])
                if keep(x, y, z)
            ],
            np.uint32,
        ).reshape(-1, 3)
        per_batch = wg_batch or max(1, max_lanes // lanes_per_wg)
        lds_bytes = self._lds_dyn_start + dynamic_lds if dynamic_lds else self._lds_static
        for s in range(0, len(wgs), per_batch):
            part = wgs[s : s + per_batch]
            batch = Batch(
                part,
                block,
                lanes_per_wg,
                nthreads,
                Lds(len(part), lds_bytes, self.rt.race_check, lanes_per_wg // WAVE),
            )
            self.rt.batch = batch
            regs = [None] * k.nslots
            for slot, v in zip(k.params, params):
                regs[slot] = v
            execution.run(k, regs, batch, self.rt)


def _dims(host_name: str, what: str, values: list) -> tuple[int, ...]:
    """Launch dimensions (i64 operands of gpu.launch_func, read as signed); each must lie in
    [0, 2^32). FlyDSL sign-extends a 32-bit grid value, so an unsigned one >= 2^31 arrives
    negative: refused, like any dimension the emulator cannot vouch a GPU would launch."""
    dims = tuple(int(np.asarray(v).astype(np.int64)) for v in values)
    bad = [d for d in dims if not 0 <= d < 1 << 32]
    if bad:
        raise EmulatorError(
            f"host launcher {host_name}: {what} {dims} has a dimension outside [0, 2^32) "
            f"({bad[0]}: a 32-bit value >= 2^31 sign-extended, or a negative one)"
        )
    return dims


def _scalar(v, t):
    if t.kind in ("i", "p"):
        return np.array(int(v) & ((1 << t.bits) - 1), t.np)
    return np.array(v, t.np)


def _wg_filter(only_wgs: WgFilter) -> Callable[[int, int, int], bool]:
    if only_wgs is None:
        return lambda x, y, z: True
    if callable(only_wgs):
        return only_wgs
    chosen = {tuple(w) + (0,) * (3 - len(w)) for w in only_wgs}
    return lambda x, y, z: (x, y, z) in chosen
