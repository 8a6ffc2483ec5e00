"""The AMDGCN ISA view, shared by every backend that targets AMD GPUs: code-object metadata,
kernel bodies, and which buffer resources a loaded value (an expert id) reaches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from moegen.verify.verdicts import Addressing, ViewVerdict


def code_object_metadata(isa: str) -> list[dict]:
    """The amdhsa.kernels entries of the code-object metadata in an assembly dump."""
    block = re.search(r"^\s*\.amdgpu_metadata\s*$(.*?)^\s*\.end_amdgpu_metadata", isa, re.M | re.S)
    if not block:
        return []
    return list((yaml.safe_load(block.group(1)) or {}).get("amdhsa.kernels", []))


@dataclass(frozen=True)
class Insn:
    """One instruction of a kernel: its index among the kernel's instructions, mnemonic and
    operand text."""

    index: int
    mnemonic: str
    operands: str

    @property
    def line(self) -> str:
        return f"{self.mnemonic} {self.operands}".rstrip()


def listing(isa: str, symbol: str) -> list[Insn | str]:
    """Instructions and labels (as str, without the colon) of `symbol` in an AMDGCN assembly
    text, in order; directives and comments dropped."""
    start = re.search(rf"^{re.escape(symbol)}:\s*$", isa, re.M)
    if not start:
        return []
    end = re.search(
        r"^\.Lfunc_end\d+:|^\s*\.end_amdhsa_kernel|^\s*\.size\s",
        isa[start.end() :],
        re.M,
    )
    text = isa[start.end() : start.end() + end.start()] if end else isa[start.end() :]
    out: list[Insn | str] = []
    count = 0
    for raw in text.splitlines():
        line = raw.split(";")[0].split("//")[0].strip()
        if not line:
            continue
        if line.endswith(":"):
            out.append(line[:-1])
        elif not line.startswith("."):
            mnemonic, _, operands = line.partition(" ")
            out.append(Insn(count, mnemonic, operands.strip()))
            count += 1
    return out


def kernel_body(isa: str, symbol: str) -> list[str]:
    """Instruction lines of `symbol` in an AMDGCN assembly text (labels, directives,
    comments dropped)."""
    return [x.line for x in listing(isa, symbol) if isinstance(x, Insn)]


@dataclass(frozen=True)
class _Sgpr:
    """What an SGPR/VGPR holds: kernarg byte offsets it came from, whether a loaded value or a
    64-bit add (s_add_u32/s_addc_u32) went into it."""

    kernarg: frozenset[int] = frozenset()
    loaded: bool = False
    added64: bool = False

    def __or__(self, other: _Sgpr) -> _Sgpr:
        return _Sgpr(
            self.kernarg | other.kernarg,
            self.loaded or other.loaded,
            self.added64 or other.added64,
        )


_REG = re.compile(r"(?<!\w)([sva])(?:\[(\d+):(\d+)\]|(\d+)\b)|\b(vcc|scc|exec|m0)\b")
_NO_DEST = (
    "s_waitcnt",
    "s_nop",
    "s_endpgm",
    "s_cbranch",
    "s_branch",
    "s_barrier",
    "s_setprio",
    "s_sleep",
    "s_sendmsg",
    "s_dcache",
    "s_icache",
    "s_trap",
    "buffer_store",
    "global_store",
    "flat_store",
    "scratch_store",
    "ds_write",
    "ds_store",
    "buffer_atomic",
    "global_atomic",
    "s_set_gpr_idx",
    "s_setreg",
)
_MEM_LOAD = (
    "buffer_load",
    "global_load",
    "flat_load",
    "scratch_load",
    "ds_read",
    "ds_load",
    "s_buffer_load",
)


def _regs(token: str) -> list[str]:
    out = []
    for kind, lo, hi, single, special in _REG.findall(token):
        if special:
            out.append(special)
        elif single:
            out.append(f"{kind}{single}")
        else:
            out += [f"{kind}{i}" for i in range(int(lo), int(hi) + 1)]
    return out


def _weight_hi(isa: str, kernel: str, weight_ptr: int) -> int:
    """Kernarg byte offset of the high dword of global pointer #weight_ptr of `kernel`."""
    meta = next(m for m in code_object_metadata(isa) if m[".name"] == kernel)
    globals_ = [a[".offset"] for a in meta[".args"] if a.get(".value_kind") == "global_buffer"]
    return globals_[weight_ptr] + 4


def _buffer_accesses(
    isa: str, kernel: str
) -> Iterator[tuple[int, str, list[str], _Sgpr | None, dict[str, _Sgpr]]]:
    """Walk the instructions of `kernel` (kernel_body order), tracking what each SGPR holds;
    yield (index, line, operands, origin of its V# word 1 or None, register state) for each
    buffer access, before the access's own effect is applied.

    make.buffer.rsrc writes `base_hi & 0xffff` into V# word 1, so the V# of every buffer access
    is tied to a kernarg pointer through the SGPR that `s_and_b32 sX, sY, 0xffff` produced.
    """
    directive = dict(re.findall(r"^\s*\.amdhsa_(user_sgpr_\w+)\s+(\d+)", isa, re.M))
    kernarg_sgpr = sum(
        n * int(directive.get(f"user_sgpr_{key}", 0))
        for key, n in (
            ("private_segment_buffer", 4),
            ("dispatch_ptr", 2),
            ("queue_ptr", 2),
        )
    )
    state: dict[str, _Sgpr] = {}
    preload = int(directive.get("user_sgpr_kernarg_preload_length", 0))
    first = int(directive.get("user_sgpr_kernarg_preload_offset", 0))
    for i in range(preload):
        state[f"s{kernarg_sgpr + 2 + i}"] = _Sgpr(frozenset({first * 4 + 4 * i}))
    word1: dict[str, _Sgpr] = {}
    for index, line in enumerate(kernel_body(isa, kernel)):
        mn, _, rest = line.partition(" ")
        ops = [t.strip() for t in re.split(r",(?![^\[]*\])", rest)] if rest else []
        if mn.startswith(("buffer_load", "buffer_store", "buffer_atomic")) and len(ops) >= 4:
            quad = _regs(ops[2])
            yield index, line, ops, word1.get(quad[1]) if len(quad) == 4 else None, state
        dests, sources = _dests_sources(mn, ops)
        if mn.startswith(("s_load", "s_buffer_load")) or mn.startswith(_MEM_LOAD):
            base = _regs(ops[1]) if len(ops) > 1 else []
            kernarg = mn.startswith("s_load") and base == [
                f"s{kernarg_sgpr}",
                f"s{kernarg_sgpr + 1}",
            ]
            off = (
                int(ops[2], 0)
                if kernarg and len(ops) > 2 and re.fullmatch(r"(0x)?[0-9a-f]+", ops[2])
                else None
            )
            for i, r in enumerate(dests):
                state[r] = (
                    _Sgpr(frozenset({off + 4 * i})) if off is not None else _Sgpr(loaded=True)
                )
                word1.pop(r, None)
            continue
        value = _Sgpr()
        for r in sources:
            value = value | state.get(r, _Sgpr())
        if mn in ("s_add_u32", "s_addc_u32", "s_sub_u32", "s_subb_u32"):
            value = _Sgpr(value.kernarg, value.loaded, True)
        for r in dests:
            state[r] = value
            word1.pop(r, None)
        if mn == "s_and_b32" and len(ops) == 3 and ops[2].lower() in ("0xffff", "65535"):
            word1[dests[0]] = value
        elif mn == "s_mov_b32" and len(ops) == 2 and ops[1] in word1:
            word1[dests[0]] = word1[ops[1]]


def weight_accesses(isa: str, kernel: str, weight_ptr: int) -> frozenset[int]:
    """Indices (in kernel_body order) of the buffer accesses of `kernel` whose V# is built
    from global pointer #weight_ptr (directly, or rebased by a 64-bit add)."""
    weight_hi = _weight_hi(isa, kernel, weight_ptr)
    return frozenset(
        index
        for index, _, _, origin, _ in _buffer_accesses(isa, kernel)
        if origin is not None and weight_hi in origin.kernarg
    )


def classify_isa(isa: str, kernel: str, weight_ptr: int) -> ViewVerdict:
    """Addressing of global pointer #weight_ptr from the final ISA of `kernel` (see
    _buffer_accesses for how a V# is tied to a kernarg pointer)."""
    weight_hi = _weight_hi(isa, kernel, weight_ptr)
    per_expert, whole, other = [], [], []
    for _, line, ops, origin, state in _buffer_accesses(isa, kernel):
        if origin is None or weight_hi not in origin.kernarg:
            continue
        if origin.added64 and origin.loaded:
            per_expert.append(f"V# base_hi <- s_addc_u32 of a loaded value: {line}")
            continue
        offsets = _regs(ops[1]) if "offen" in ops[3] or "idxen" in ops[3] else []
        offsets += _regs(ops[3].split()[0])
        if not origin.added64 and any(state.get(r, _Sgpr()).loaded for r in offsets):
            whole.append(f"V# base = weight kernarg, loaded value in offset: {line}")
        else:
            other.append(f"V# of the weight without expert-dependent base/offset: {line}")
    if per_expert:
        return ViewVerdict("isa", Addressing.PER_EXPERT, tuple(per_expert[:3]))
    if whole:
        return ViewVerdict("isa", Addressing.WHOLE_TENSOR, tuple(whole[:3]))
    evidence = other[:3] or [f"no buffer access through a V# built from kernarg+{weight_hi - 4}"]
    return ViewVerdict("isa", Addressing.UNDETERMINED, tuple(evidence))


# Instructions whose destination is also an input: the SOPK forms (`s_mulk_i32 s14, 0x1800` is
# s14 = s14 * 0x1800, which LLVM picks when a multiplier is not a power of two, e.g. the
# production model_dim 6144) and multiply-accumulates. Dropping that input would lose the
# expert id on its way into a whole_tensor offset.
_READS_DEST = ("s_addk_", "s_mulk_", "s_cmovk_", "v_mac_", "v_fmac_")


def _dests_sources(mn: str, ops: list[str]) -> tuple[list[str], list[str]]:
    """(registers written, registers read) by one instruction, for the taint walk."""
    if mn.startswith(_NO_DEST):
        return [], [r for t in ops for r in _regs(t)]
    if mn.startswith(("s_cmp", "s_bitcmp")):
        return ["scc"], [r for t in ops for r in _regs(t)]
    if mn.startswith("v_cmp") and mn.endswith("_e32"):
        return ["vcc"], [r for t in ops for r in _regs(t)]
    if not ops:
        return [], []
    sources = [r for t in ops[1:] for r in _regs(t)]
    dests = _regs(ops[0])
    if mn.startswith(_READS_DEST):
        sources += dests
    if mn.startswith(("s_addc", "s_subb", "s_cselect")):
        sources.append("scc")
    if mn.startswith("s_") and not mn.startswith(("s_mov", "s_cselect", "s_load", "s_buffer_load")):
        dests = dests + ["scc"]
    return dests, sources
