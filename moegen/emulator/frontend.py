"""Front end: parse FlyDSL's final LLVM-dialect MLIR with FlyDSL's bundled MLIR bindings and
prepare each kernel once into blocks of closures over integer register slots (no MLIR calls
on the hot path). Also reads the host launcher (`gpu.launch_func`) for grid, block, dynamic
LDS size and the mapping from launcher arguments to kernel parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EmulatorError, UnsupportedOps
from .execution import immediate_post_dominators
from .ops import OpInfo, lookup
from .types import Ty, parse_type


@dataclass
class Op:
    name: str
    loc: str
    fn: object
    ins: list[int]
    outs: list[int]
    out_ty: Ty | None


@dataclass
class Terminator:
    name: str
    ins: list[int]
    succ: list[int]
    loc: str
    segments: list[int] = field(default_factory=list)
    cases: list[int] = field(default_factory=list)
    case_segments: list[int] = field(default_factory=list)


@dataclass
class Block:
    args: list[int]
    argtys: list[Ty]
    ops: list[Op]
    term: Terminator


@dataclass
class Kernel:
    """A kernel prepared for execution."""

    name: str
    params: list[int]
    param_tys: list[Ty]
    blocks: list[Block]
    ipdom: dict
    nslots: int
    known_block: tuple | None


def location(op) -> str:
    """'file.py:line' of an op (the FlyDSL source line), or a short form of its location."""
    s = str(op.location)
    m = re.search(r'"([^"]+)":(\d+):(\d+)', s)
    return f"{m.group(1).split('/')[-1]}:{m.group(2)}" if m else s[:60]


def attributes(op) -> dict:
    at = op.attributes
    return {at[i].name: at[i].attr for i in range(len(at))}


BUFFER_OP_PREFIX = "rocdl.raw.ptr.buffer."  # operands end with (voffset, soffset); aux: attr
S_BUFFER_LOAD = "llvm.amdgcn.s.buffer.load"  # operands (rsrc, offset, aux)
# Integer ops an offset is computed through (the unsigned-wrap report's backward slice).
OFFSET_OPS = {
    f"llvm.{n}"
    for n in (
        "add sub mul shl lshr ashr and or xor select zext sext trunc udiv sdiv urem srem "
        "freeze intr.umin intr.umax intr.smin intr.smax"
    ).split()
}


def offset_operands(op) -> list:
    """The byte-offset operands of a buffer op (voffset and soffset, or the s_buffer_load
    offset); [] for any other op."""
    if op.name.startswith(BUFFER_OP_PREFIX):
        return list(op.operands)[-2:]
    if op.name == "llvm.call_intrinsic" and str(op.attributes["intrin"]).strip('"').startswith(
        S_BUFFER_LOAD
    ):
        return [op.operands[1]]
    return []


def _incoming(arg, blocks) -> list:
    """The values branches pass to block argument `arg` (llvm.br / llvm.cond_br)."""
    target, k, values = arg.owner, arg.arg_number, []
    for b in blocks:
        term = list(b.operations)[-1]
        ops = list(term.operands)
        if term.name == "llvm.br" and term.successors[0] == target:
            values.append(ops[k])
        elif term.name == "llvm.cond_br":
            seg = [int(x) for x in term.attributes["operandSegmentSizes"]]
            groups = (ops[1 : 1 + seg[1]], ops[1 + seg[1] :])
            values += [g[k] for s, g in zip(term.successors, groups) if s == target]
    return values


def offset_slice(blocks) -> set:
    """Ops whose result flows into a buffer offset operand: the backward slice from every
    offset operand through OFFSET_OPS and block arguments (loop-carried offsets)."""
    from flydsl._mlir import ir

    work = [v for b in blocks for op in b.operations for v in offset_operands(op)]
    seen_values, ops = set(), set()
    while work:
        v = work.pop()
        if v in seen_values:
            continue
        seen_values.add(v)
        if isinstance(v.owner, ir.Block):
            work += _incoming(ir.BlockArgument(v), blocks)
        elif v.owner.name in OFFSET_OPS:
            ops.add(v.owner)
            work += list(v.owner.operands)
    return ops


def folded_addend(op) -> int:
    """C when a buffer op's voffset is `llvm.add x, C` with a constant C in (0, 2^32), else 0.
    LLVM's AMDGPU backend may move such a C into the instruction's unsigned offset field
    (isBaseWithConstantOffset), so the hardware adds it to voffset itself."""
    if not op.name.startswith(BUFFER_OP_PREFIX):
        return 0
    v = op.operands[len(op.operands) - 2]
    if not hasattr(v.owner, "name") or v.owner.name != "llvm.add":
        return 0
    for x in v.owner.operands:
        d = x.owner
        if hasattr(d, "name") and d.name == "llvm.mlir.constant":
            return int(d.attributes["value"].value) & 0xFFFFFFFF
    return 0


class Module:
    """A parsed MLIR module: its kernels, host launchers and LDS globals."""

    def __init__(self, mlir_path_or_text: str | Path) -> None:
        from flydsl._mlir import ir

        text = str(mlir_path_or_text)
        if "\n" not in text and Path(text).exists():
            text = Path(text).read_text()
        self.ctx = ir.Context()
        self.ctx.load_all_available_dialects()
        self.ctx.allow_unregistered_dialects = True
        with self.ctx:
            self.module = ir.Module.parse(text)
        self.kernels, self.hosts, self.lds_globals = {}, {}, {}
        with self.ctx:
            for op in self.module.body.operations:
                if op.name == "gpu.module":
                    for k in op.regions[0].blocks[0].operations:
                        a = attributes(k)
                        if k.name == "llvm.func" and len(k.regions[0].blocks):
                            self.kernels[str(a["sym_name"]).strip('"')] = k
                        elif (
                            k.name == "llvm.mlir.global"
                            and "addr_space" in a
                            and int(a["addr_space"].value) == 3
                        ):
                            self.lds_globals[str(a["sym_name"]).strip('"')] = (
                                parse_type(str(a["global_type"].value)).size,
                                int(a["alignment"].value) if "alignment" in a else 16,
                            )
                elif op.name == "llvm.func" and len(op.regions[0].blocks):
                    self.hosts[str(op.attributes["sym_name"]).strip('"')] = op

    def lds_layout(self) -> tuple[dict[str, int], int, int]:
        """(offset of each LDS global, static bytes, alignment of the dynamic area). Zero-size
        globals (dynamic shared memory) all start after the static ones."""
        offsets, end, dyn_align = {}, 0, 16
        for name, (size, align) in sorted(self.lds_globals.items(), key=lambda kv: kv[1][0] == 0):
            if size == 0:
                dyn_align = max(dyn_align, align)
                continue
            end = -(-end // align) * align
            offsets[name] = end
            end += size
        dyn_start = -(-end // dyn_align) * dyn_align
        for name, (size, _) in self.lds_globals.items():
            if size == 0:
                offsets[name] = dyn_start
        return offsets, end, dyn_start

    def prepare(self, name: str, runtime) -> Kernel:
        """Build the closures of kernel `name`; raises UnsupportedOps listing every op (with
        its source locations) that has no handler, before anything runs."""
        if name not in self.kernels:
            raise EmulatorError(f"no kernel {name!r} in module; kernels: {sorted(self.kernels)}")
        with self.ctx:
            fn = self.kernels[name]
            blocks = list(fn.regions[0].blocks)
            slots: dict = {}

            def slot(v) -> int:
                return slots.setdefault(v, len(slots))

            unknown: dict[str, list[str]] = {}
            in_offset_slice = offset_slice(blocks)
            out_blocks = []
            for b in blocks:
                ops = list(b.operations)
                prepared = []
                for op in ops[:-1]:
                    a = attributes(op)
                    intrin = str(a["intrin"]).strip('"') if "intrin" in a else None
                    info = OpInfo(
                        op.name,
                        location(op),
                        a,
                        [parse_type(str(v.type)) for v in op.operands],
                        [parse_type(str(r.type)) for r in op.results],
                        op in in_offset_slice,
                        folded_addend(op),
                    )
                    factory = lookup(op.name, intrin)
                    if factory is None:
                        unknown.setdefault(op.name + (f" {intrin}" if intrin else ""), []).append(
                            info.loc
                        )
                        continue
                    prepared.append(
                        Op(
                            op.name,
                            info.loc,
                            factory(info, runtime),
                            [slot(v) for v in op.operands],
                            [slot(r) for r in op.results],
                            info.out_ty,
                        )
                    )
                prepared_term = self._terminator(ops[-1], blocks, slot)
                out_blocks.append(
                    Block(
                        [slot(a) for a in b.arguments],
                        [parse_type(str(a.type)) for a in b.arguments],
                        prepared,
                        prepared_term,
                    )
                )
            if unknown:
                lines = [
                    f"  {n}  at {', '.join(sorted(set(locs)))}"
                    for n, locs in sorted(unknown.items())
                ]
                raise UnsupportedOps(
                    f"kernel {name} uses {len(unknown)} op(s) the emulator does not model:\n"
                    + "\n".join(lines)
                )
            a = attributes(fn)
            entry = blocks[0]
            return Kernel(
                name,
                [slot(v) for v in entry.arguments],
                [parse_type(str(v.type)) for v in entry.arguments],
                out_blocks,
                immediate_post_dominators([blk.term.succ for blk in out_blocks]),
                len(slots),
                (
                    tuple(int(x) for x in a["gpu.known_block_size"])
                    if "gpu.known_block_size" in a
                    else None
                ),
            )

    @staticmethod
    def _terminator(t, blocks, slot) -> Terminator:
        a = attributes(t)
        term = Terminator(
            t.name,
            [slot(v) for v in t.operands],
            [blocks.index(s) for s in t.successors],
            location(t),
        )
        if "operandSegmentSizes" in a:
            term.segments = [int(x) for x in a["operandSegmentSizes"]]
        if t.name == "llvm.switch":
            term.cases = [int(x) for x in a["case_values"]] if "case_values" in a else []
            term.case_segments = (
                [int(x) for x in a["case_operand_segments"]]
                if "case_operand_segments" in a
                else [0] * len(term.cases)
            )
        return term

    def launch_op(self, kernel: str):
        """(host function, gpu.launch_func op) that launches `kernel`."""
        for host in self.hosts.values():
            for blk in host.regions[0].blocks:
                for op in blk.operations:
                    if op.name == "gpu.launch_func" and str(op.attributes["kernel"]).endswith(
                        "@" + kernel
                    ):
                        return host, op
        raise EmulatorError(
            f"no gpu.launch_func launches {kernel}; use launch_raw() with explicit parameters"
        )
