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
