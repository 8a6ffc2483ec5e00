"""ISA performance counters: what the compiled AMDGCN of one kernel says about its speed.

No AMD GPU is reachable, so speed is read statically from the final ISA that `moegen verify`
compiles. Every counter is defined here, for one kernel of one (variant, shape, arch):

The steady-state K loop
    A back edge is a branch (`s_branch`, `s_cbranch_*`) to a label defined earlier in the
    kernel; the loop is every instruction between that label and the branch, in text order
    (a forward branch inside it is not followed: everything in the range counts once). The K
    loop is, among the loops whose body holds an MFMA, an innermost one (no other such loop
    nested inside it); with several, the one with the most MFMAs (the first on a tie). A kernel
    whose K loop the compiler unrolled completely (e.g. the `small` shape) has none: its loop
    counters are None ("-" in the table). "Per pass" = one execution of the loop body.

loads (by width)
    VMEM loads per pass: `buffer_load_*`, `global_load_*`, `flat_load_*`, `scratch_load_*`,
    grouped by the element suffix (dword, dwordx2, dwordx3, dwordx4, ubyte, short_d16...).
    A load's bytes = its bytes per lane x 64 lanes (wave64; exec masking is ignored). LDS reads
    (`ds_read*` / `ds_load*`) are counted apart as `ds_reads`.

weight B/lane
    Bytes per lane of the loads whose buffer resource (V#) is built from the kernel's weight
    pointer (moegen.verify.isa.weight_accesses: directly, or rebased by a 64-bit add); the
    SMALLEST over the loop's weight loads (a floor means "every weight load moves at least this
    much"). x 64 = weight bytes per load instruction. None when the loop reads no weight
    through a buffer resource.

MFMA per load
    `v_mfma*` / `v_smfmac*` instructions per pass / VMEM loads per pass.

drains
    `s_waitcnt` per pass whose vmcnt is 0 (`vmcnt(0)`, alone or combined, e.g.
    `s_waitcnt vmcnt(0) lgkmcnt(0)`, or an immediate encoding vmcnt 0): each waits until every
    load the wave issued has returned.

KiB in flight (mean, max)
    The wave's vector-memory counter is modelled as a queue in issue order: every VMEM
    instruction (load, store or atomic: all count in vmcnt on gfx9/CDNA) joins it and they
    retire in order (CDNA returns them in issue order); `s_waitcnt vmcnt(N)` retires from the
    front until N remain. Simulate two passes of the loop body from an empty queue; at each
    `s_waitcnt vmcnt(N)` of the SECOND pass that retires at least one load, record the load
    bytes in the queue just before it (the loads issued and not yet retired while the wave
    stalls). The mean and the max of those records, in KiB (1024 B), are the counters; the
    first pass only fills the queue with what a pass leaves in flight for the next one
    (software prefetch). 0 when no wait in the second pass retires a load.

LDS bytes
    `.group_segment_fixed_size` of the code-object metadata (static LDS per workgroup).

VGPR, AGPR, SGPR, waves/SIMD
    Counts from the metadata. On gfx90a-family CDNA (gfx942, gfx950) the arch VGPRs and AGPRs
    share one unified file of 512 registers per lane per SIMD: a wave allocates
    alignTo(VGPR, 4) + AGPR registers (AGPRs start at the 4-aligned accum_offset), rounded up to
    the allocation granule of 8, and at most 8 waves fit per SIMD. SGPRs (gfx9: 800 per SIMD)
    allow 10 / 9 / 8 / 7 waves at <= 80 / 88 / 100 / more. Source: LLVM
    llvm/lib/Target/AMDGPU/Utils/AMDGPUBaseInfo.cpp (getVGPRAllocGranule: 8 with
    FeatureGFX90AInsts; getTotalNumVGPRs: 512; getMaxWavesPerEU: 8 for GFX90A;
    getNumWavesPerEUWithNumVGPRs; getOccupancyWithNumSGPRs; getTotalNumVGPRs(has90AInsts,
    AGPRs, VGPRs) = alignTo(VGPRs, 4) + AGPRs), and LLVM commit b7611370 (#85860), which quotes
    the gfx90a ISA guide section 3.6.4: 512 unified registers, at most 256 of each kind. LDS
    limits too: a CU (4 SIMDs) holds floor(LDS per CU / LDS bytes) workgroups of
    max_flat_workgroup_size / 64 waves; LDS per CU is 64 KiB on gfx942 and 160 KiB on gfx950
    (ROCm docs, "AMD GPU specifications", reference/gpu-specs). waves/SIMD = the smallest of
    the three limits.

spills
    VGPR + SGPR spill counts plus scratch bytes per lane (private segment) from the metadata.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, deque
from dataclasses import dataclass

from moegen.verify.isa import Insn, code_object_metadata, listing, weight_accesses

LANES = 64  # wave64 on CDNA
KIB = 1024
_VMEM = ("buffer_", "global_", "flat_", "scratch_")
_BRANCH = ("s_branch", "s_cbranch_")
_MFMA = ("v_mfma", "v_smfmac")
# bytes per lane of a load's element suffix (after `_load_`, an optional `lds_` stripped)
_WIDTH = {
    "ubyte": 1,
    "sbyte": 1,
    "ubyte_d16": 1,
    "ubyte_d16_hi": 1,
    "sbyte_d16": 1,
    "sbyte_d16_hi": 1,
    "ushort": 2,
    "sshort": 2,
    "short_d16": 2,
    "short_d16_hi": 2,
    "dword": 4,
    "dwordx2": 8,
    "dwordx3": 12,
    "dwordx4": 16,
}


@dataclass(frozen=True)
class ArchLimits:
    """What one SIMD / CU of an arch holds (see the module docstring for the sources)."""

    vgprs: int = 512  # unified VGPR + AGPR file, per lane
    vgpr_granule: int = 8
    max_waves: int = 8  # per SIMD
    lds_per_cu: int = 64 * KIB
    simds_per_cu: int = 4


ARCH_LIMITS = {
    "gfx942": ArchLimits(),
    "gfx950": ArchLimits(lds_per_cu=160 * KIB),
}


def k_loop(items: list[Insn | str]) -> list[Insn] | None:
    """The body of the steady-state K loop (module docstring), or None without one."""
    labels = {item: i for i, item in enumerate(items) if isinstance(item, str)}
    loops = []
    for j, item in enumerate(items):
        if isinstance(item, Insn) and item.mnemonic.startswith(_BRANCH):
            target = item.operands.split(",")[-1].strip()
            i = labels.get(target)
            if i is not None and i < j:
                body = [x for x in items[i + 1 : j + 1] if isinstance(x, Insn)]
                mfmas = sum(x.mnemonic.startswith(_MFMA) for x in body)
                if mfmas:
                    loops.append((i, j, mfmas, body))
    inner = [
        loop
        for loop in loops
        if not any(o is not loop and loop[0] <= o[0] and o[1] <= loop[1] for o in loops)
    ]
    if not inner:
        return None
    return max(inner, key=lambda loop: (loop[2], -loop[0]))[3]


# --------------------------------------------------------------------- instruction semantics


def load_width(mnemonic: str) -> int | None:
    """Bytes per lane of a VMEM load mnemonic; None if it is not a VMEM load."""
    if not mnemonic.startswith(_VMEM) or "_load_" not in mnemonic:
        return None
    suffix = mnemonic.split("_load_", 1)[1].removeprefix("lds_")
    if suffix not in _WIDTH:
        raise ValueError(f"unknown VMEM load width in {mnemonic!r}; add it to _WIDTH")
    return _WIDTH[suffix]


def is_vmem(mnemonic: str) -> bool:
    """A vector-memory instruction that counts in vmcnt (load, store or atomic)."""
    return mnemonic.startswith(_VMEM) and any(
        k in mnemonic for k in ("_load_", "_store_", "_atomic")
    )


def waitcnt_vmcnt(insn: Insn) -> int | None:
    """The vmcnt an `s_waitcnt` waits for; None when it does not wait on vector memory."""
    if insn.mnemonic != "s_waitcnt":
        return None
    m = re.search(r"vmcnt\((\d+)\)", insn.operands)
    if m:
        return int(m.group(1))
    if re.fullmatch(r"(0x)?[0-9a-fA-F]+", insn.operands):  # gfx9 encoding: vmcnt = [3:0],[15:14]
        imm = int(insn.operands, 0)
        vmcnt = (imm & 0xF) | ((imm >> 14) & 0x3) << 4
        return vmcnt if vmcnt < 63 else None
    return None


# ------------------------------------------------------------------------------ the counters


@dataclass(frozen=True)
class LoopCounters:
    """Counters of one pass of the steady-state K loop (module docstring)."""

    loads_by_width: tuple[tuple[str, int], ...]  # (suffix, count), widest first
    loads: int
    ds_reads: int
    mfmas: int
    drains: int
    kib_in_flight_mean: float
    kib_in_flight_max: float
    weight_loads: int
    weight_bytes_per_lane: int | None

    @property
    def mfma_per_load(self) -> float | None:
        return self.mfmas / self.loads if self.loads else None


def loop_counters(body: list[Insn], weight: frozenset[int] = frozenset()) -> LoopCounters:
    """The counters of one loop body; `weight`: indices of the instructions reading the weight."""
    widths = Counter()
    loads = ds_reads = mfmas = drains = 0
    weight_widths = []
    for insn in body:
        width = load_width(insn.mnemonic)
        if width is not None:
            loads += 1
            widths[insn.mnemonic.split("_load_", 1)[1].removeprefix("lds_")] += 1
            if insn.index in weight:
                weight_widths.append(width)
        ds_reads += insn.mnemonic.startswith(("ds_read", "ds_load"))
        mfmas += insn.mnemonic.startswith(_MFMA)
        drains += waitcnt_vmcnt(insn) == 0
    mean, peak = in_flight_kib(body)
    return LoopCounters(
        loads_by_width=tuple(sorted(widths.items(), key=lambda kv: (-_WIDTH[kv[0]], kv[0]))),
        loads=loads,
        ds_reads=ds_reads,
        mfmas=mfmas,
        drains=drains,
        kib_in_flight_mean=mean,
        kib_in_flight_max=peak,
        weight_loads=len(weight_widths),
        weight_bytes_per_lane=min(weight_widths) if weight_widths else None,
    )


def in_flight_kib(body: list[Insn]) -> tuple[float, float]:
    """(mean, max) KiB of loads in flight at the retiring waits of the second of two passes."""
    queue: deque[int] = deque()  # load bytes of each outstanding VMEM op (0: store/atomic)
    records: list[int] = []
    for rep in range(2):
        for insn in body:
            if is_vmem(insn.mnemonic):
                width = load_width(insn.mnemonic)
                queue.append(LANES * width if width is not None else 0)
                continue
            n = waitcnt_vmcnt(insn)
            if n is None or len(queue) <= n:
                continue
            retired = [queue[i] for i in range(len(queue) - n)]
            if rep == 1 and any(retired):
                records.append(sum(queue))
            for _ in retired:
                queue.popleft()
    if not records:
        return 0.0, 0.0
    return statistics.fmean(records) / KIB, max(records) / KIB


@dataclass(frozen=True)
class KernelCounters:
    """Every counter of one compiled kernel (module docstring)."""

    kernel: str
    loop: LoopCounters | None
    vgpr: int
    agpr: int
    sgpr: int
    lds_bytes: int
    spills: int
    waves_per_simd: int


def waves_per_simd(
    arch: str, vgpr: int, agpr: int, sgpr: int, lds_bytes: int = 0, workgroup: int = 256
) -> int:
    """Waves per SIMD the registers and LDS of one kernel allow on `arch` (module docstring)."""
    if arch not in ARCH_LIMITS:
        raise ValueError(
            f"no register/LDS limits known for arch {arch!r} (known: {', '.join(ARCH_LIMITS)})"
        )
    lim = ARCH_LIMITS[arch]
    total = -(-vgpr // 4) * 4 + agpr if agpr else vgpr
    limits = [lim.max_waves]
    if total >= lim.vgpr_granule:
        rounded = -(-total // lim.vgpr_granule) * lim.vgpr_granule
        limits.append(max(lim.vgprs // rounded, 1))
    limits.append(10 if sgpr <= 80 else 9 if sgpr <= 88 else 8 if sgpr <= 100 else 7)
    if lds_bytes:
        groups = lim.lds_per_cu // lds_bytes
        limits.append(groups * -(-workgroup // LANES) // lim.simds_per_cu)
    return min(limits)


def kernel_counters(isa: str, arch: str, weight_ptr: int) -> list[KernelCounters]:
    """The counters of every kernel of an ISA dump (module docstring)."""
    out = []
    for meta in code_object_metadata(isa):
        name = meta[".name"]
        body = k_loop(listing(isa, name))
        loop = None
        if body is not None:
            loop = loop_counters(body, weight_accesses(isa, name, weight_ptr))
        vgpr, sgpr = int(meta[".vgpr_count"]), int(meta[".sgpr_count"])
        agpr = int(meta.get(".agpr_count", 0))
        lds = int(meta.get(".group_segment_fixed_size", 0))
        spills = (
            int(meta.get(".vgpr_spill_count", 0))
            + int(meta.get(".sgpr_spill_count", 0))
            + int(meta.get(".private_segment_fixed_size", 0))
        )
        workgroup = int(meta.get(".max_flat_workgroup_size", 256))
        out.append(
            KernelCounters(
                name,
                loop,
                vgpr,
                agpr,
                sgpr,
                lds,
                spills,
                waves_per_simd(arch, vgpr, agpr, sgpr, lds, workgroup),
            )
        )
    return out
