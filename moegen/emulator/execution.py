"""Execution model: a batch of workgroups runs in lock-step as waves of 64 lanes.

Lane l of a batch is lane l % 64 of wave (l % lanes_per_wg) // 64 of the batch's workgroup
l // lanes_per_wg. Control flow uses an EXEC mask and a SIMT reconvergence stack: a divergent
branch pushes one entry per live edge, each running until the branch's immediate
post-dominator, where the lanes reconverge. SSA and block-argument writes under a partial
mask are masked merges, so every lane sees its own scalar execution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .diagnostics import AmbiguousAccess, Overflow, OverflowKind
from .errors import EmulatorError, ExecError
from .lds import Lds
from .memory import Memory
from .types import Ty, signed, zero_of

WAVE = 64
EXIT = -1


@dataclass
class Batch:
    """Lane geometry and per-lane ids of the workgroups running together."""

    wgs: np.ndarray  # [nwg, 3] workgroup ids
    block: tuple
    lanes_per_wg: int
    nthreads: int
    lds: Lds
    mask: np.ndarray = None  # current EXEC mask [L]
    ids: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        nwg = len(self.wgs)
        self.L = nwg * self.lanes_per_wg
        tid = np.tile(np.arange(self.lanes_per_wg, dtype=np.uint32), nwg)
        self.tid = tid
        self.alive = tid < self.nthreads
        self.lane = tid % np.uint32(WAVE)
        self.wave = (tid // np.uint32(WAVE)).astype(np.int16)
        self.wg_slot = np.repeat(np.arange(nwg), self.lanes_per_wg)
        bx, by, _ = self.block
        self.ids = {
            "workitem.id.x": tid % np.uint32(bx),
            "workitem.id.y": (tid // np.uint32(bx)) % np.uint32(by),
            "workitem.id.z": tid // np.uint32(bx * by),
        }
        for k, d in enumerate("xyz"):
            self.ids[f"workgroup.id.{d}"] = (
                np.array(self.wgs[0, k], np.uint32)
                if nwg == 1
                else np.repeat(self.wgs[:, k], self.lanes_per_wg)
            )
            self.ids[f"workitem.dim.{d}"] = self.ids[f"workgroup.dim.{d}"] = np.array(
                self.block[k], np.uint32
            )

    def where(self, lane: int) -> str:
        """Human description of batch lane `lane`."""
        wg, t = self.workgroup(lane), int(self.tid[lane])
        return f"workgroup {wg} thread {t} (wave {t // WAVE}, lane {t % WAVE})"

    def workgroup(self, lane: int) -> tuple[int, ...]:
        """Workgroup id (x, y, z) of batch lane `lane`."""
        return tuple(int(v) for v in self.wgs[lane // self.lanes_per_wg])

    def waves(self, x: np.ndarray) -> np.ndarray:
        """[L, ...] -> [L/64, 64, ...]."""
        return x.reshape((-1, WAVE) + x.shape[1:])

    def require_full_waves(self, what: str) -> None:
        """A cross-lane op needs every live lane of a wave active (or none of them)."""
        m = self.waves(self.mask)
        a = self.waves(self.alive)
        partial = m.any(1) & (m != a).any(1)
        if partial.any():
            w = int(np.nonzero(partial)[0][0])
            raise ExecError(
                f"{what} executed under a partial EXEC mask ({int(m[w].sum())} of {int(a[w].sum())} lanes) "
                f"in {self.where(w * WAVE)}: the result depends on how the backend structurizes "
                f"the divergent control flow"
            )


class Runtime:
    """What op handlers see: memory, the current batch, options and counters."""

    def __init__(self, arch: str, memory: Memory, check_overflow: bool, race_check: bool) -> None:
        self.arch = arch
        self.fp8_format = "fnuz" if arch == "gfx942" else "fn"
        self.mem = memory
        self.check_overflow = check_overflow
        self.race_check = race_check
        self.batch: Batch | None = None
        self.overflow_report: dict[tuple[str, str, str], Overflow] = {}
        self.ambiguous_accesses: list[AmbiguousAccess] = []
        self.stats: dict[str, int] = {
            "ops": 0,
            "blocks": 0,
            "divergent_branches": 0,
            "mfma": 0,
            "bytes_loaded": 0,
            "bytes_stored": 0,
            "atomics": 0,
        }

    def record_overflow(
        self, kind: OverflowKind, op, bad: np.ndarray, exact: np.ndarray, note: str = ""
    ) -> None:
        """Count the active lanes in `bad` ([L] or scalar) under one report line of `op`
        (an OpInfo); the first one becomes the line's example with its exact value."""
        b = self.batch
        hit = np.broadcast_to(bad, b.mask.shape) & b.mask
        n = int(hit.sum())
        if not n:
            return
        key = (kind, op.loc, op.name)
        if key not in self.overflow_report:
            k = int(np.nonzero(hit)[0][0])
            value = int(np.broadcast_to(exact, b.mask.shape)[k])
            self.overflow_report[key] = Overflow(
                kind, op.name, op.loc, b.workgroup(k), int(b.tid[k]), value, 0, note
            )
        self.overflow_report[key].lanes += n

    def record_ambiguous(self, op, lanes: np.ndarray, wrapped, unwrapped) -> None:
        """One AmbiguousAccess per batch lane in `lanes` (offsets given per batch lane)."""
        b = self.batch
        for k in lanes.tolist():
            self.ambiguous_accesses.append(
                AmbiguousAccess(
                    op.name,
                    op.loc,
                    b.workgroup(k),
                    int(b.tid[k]),
                    int(wrapped[k]),
                    int(unwrapped[k]),
                )
            )


def merge(mask: np.ndarray, new, old, t: Ty):
    """Lanes in `mask` take `new`, the others keep `old`."""
    if t.kind == "s":
        old = old if old is not None else zero_of(t)
        return tuple(merge(mask, n, o, f) for n, o, f in zip(new, old, t.fields))
    old = zero_of(t) if old is None else old
    return np.where(mask.reshape(mask.shape + (1,) * len(t.eshape)), new, old)


def run(cf, regs: list, batch: Batch, rt: Runtime) -> None:
    """Execute compiled kernel `cf` for one batch; `regs` holds the kernel parameters."""
    stack = [[0, batch.alive, EXIT]]
    stats = rt.stats
    blocks = cf.blocks
    while stack:
        top = stack[-1]
        pc, mask, rpc = top
        if pc == EXIT or pc == rpc:
            stack.pop()
            continue
        blk = blocks[pc]
        full = bool(mask.all())
        batch.mask = mask
        stats["blocks"] += 1
        for op in blk.ops:
            try:
                r = op.fn(*[regs[i] for i in op.ins])
            except EmulatorError:
                raise
            except Exception as e:  # a numpy/python failure inside a handler: name the op
                raise EmulatorError(f"{op.name} at {op.loc}: {type(e).__name__}: {e}") from e
            if op.outs:
                o = op.outs[0]
                regs[o] = r if (full or regs[o] is None) else merge(mask, r, regs[o], op.out_ty)
        stats["ops"] += len(blk.ops)
        term = blk.term
        if term.name == "llvm.return":
            top[0] = EXIT
            continue
        edges = _edges(term, regs, mask)
        live = [e for e in edges if np.ndim(e[1]) == 0 or e[1].any()]
        for target, emask, args in live:
            tb = blocks[target]
            efull = full and len(live) == 1
            for slot, v, t in zip(tb.args, [regs[i] for i in args], tb.argtys):
                regs[slot] = v if (efull or regs[slot] is None) else merge(emask, v, regs[slot], t)
        if len(live) == 1:
            top[0] = live[0][0]
        elif not live:
            stack.pop()
        else:
            stats["divergent_branches"] += 1
            join = cf.ipdom[pc]
            if join == rpc:
                stack.pop()
            else:
                top[0] = join
            for target, emask, _ in reversed(live):
                if target != join:
                    stack.append([target, emask, join])


def _edges(term, regs, mask):
    """(successor, lane mask, argument slots) of each outgoing edge of a terminator."""
    if term.name == "llvm.br":
        return [(term.succ[0], mask, term.ins)]
    if term.name == "llvm.cond_br":
        cond = regs[term.ins[0]]
        n_true = term.segments[1]
        t_args, f_args = term.ins[1 : 1 + n_true], term.ins[1 + n_true :]
        if np.ndim(cond) == 0:
            return [(term.succ[0], mask, t_args)] if bool(cond) else [(term.succ[1], mask, f_args)]
        return [(term.succ[0], mask & cond, t_args), (term.succ[1], mask & ~cond, f_args)]
    if term.name == "llvm.switch":
        value = signed(regs[term.ins[0]])
        n_default = term.segments[1]
        pos, rest, edges = 1 + n_default, mask.copy() if np.ndim(mask) else mask, []
        for case, target, n in zip(term.cases, term.succ[1:], term.case_segments):
            hit = rest & (value == case)
            rest = rest & ~hit
            edges.append((target, hit, term.ins[pos : pos + n]))
            pos += n
        return edges + [(term.succ[0], rest, term.ins[1 : 1 + n_default])]
    if term.name == "llvm.unreachable":
        raise ExecError(f"llvm.unreachable reached at {term.loc}")
    raise EmulatorError(f"unsupported terminator {term.name} at {term.loc}")


def immediate_post_dominators(succ: list[list[int]]) -> dict[int, int]:
    """Immediate post-dominator of each block; EXIT (-1) is the virtual exit node."""
    nodes = list(range(len(succ)))
    pdom = {b: set(nodes) | {EXIT} for b in nodes}
    pdom[EXIT] = {EXIT}
    changed = True
    while changed:
        changed = False
        for b in reversed(nodes):
            new = set.intersection(*[pdom[s] for s in (succ[b] or [EXIT])]) | {b}
            if new != pdom[b]:
                pdom[b], changed = new, True
    return {b: max(pdom[b] - {b}, key=lambda p: len(pdom[p])) for b in nodes}
