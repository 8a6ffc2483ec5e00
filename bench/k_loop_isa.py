"""Counters of the K loop in compiled kernels' AMDGCN: a quick reading of `moegen verify`'s ISA.

Usage:
    moegen verify -k 'moe_s1_*' --shape production --dump-dir /tmp/dump
    python bench/k_loop_isa.py $(find /tmp/dump -name '*_final_isa.s' | sort)

For each .s file: the K loop is the longest backward branch (a K loop LLVM unrolled completely
has none: the whole kernel is read once, marked `unrolled`). Inside it: VMEM loads by width,
MFMAs, ds_read/ds_write, s_barrier, `s_waitcnt vmcnt(0)` count, MFMAs per VMEM load, and KiB
in flight per wave: replaying the body twice, at each `s_waitcnt vmcnt(N)` that retires a
load, the bytes (64 lanes x width) of the loads issued and not yet retired just before it;
min and median over the second pass. Registers, spills and LDS come from the kernel metadata.
A scratch tool for the kernel work; `moegen verify`'s counters table (issue 10) defines the
committed metrics.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

WIDTH = {"dword": 4, "dwordx2": 8, "dwordx3": 12, "dwordx4": 16, "ubyte": 1, "ushort": 2}
LOAD = re.compile(r"(buffer|global)_load_(\w+)")


def _loop(lines: list[str]) -> tuple[int, int] | None:
    labels = {m.group(1): i for i, l in enumerate(lines) if (m := re.match(r"^(\.?L\w+):", l))}
    back = []
    for i, line in enumerate(lines):
        m = re.match(r"\s*s_(?:cbranch_\w+|branch)\s+(\.?L\w+)", line)
        if m and labels.get(m.group(1), i) < i:
            back.append((labels[m.group(1)], i))
    return max(back, key=lambda ab: ab[1] - ab[0]) if back else None


def counters(text: str) -> dict:
    lines = text.splitlines()
    meta = {}
    for key in ("vgpr_count", "agpr_count", "vgpr_spill_count", "group_segment_fixed_size"):
        m = re.search(rf"\.{key}:\s+(\d+)", text)
        meta[key] = int(m.group(1)) if m else None
    span = _loop(lines)
    a, b = span if span else (0, len(lines) - 1)
    body = [
        l.strip() for l in lines[a : b + 1] if l.strip() and not l.strip().startswith((";", "."))
    ]
    widths: dict[str, int] = {}
    count = dict(mfma=0, ds_read=0, ds_write=0, barrier=0, vmcnt0=0)
    for line in body:
        if m := LOAD.match(line):
            widths[m.group(2)] = widths.get(m.group(2), 0) + 1
        count["mfma"] += line.startswith("v_mfma")
        count["ds_read"] += line.startswith(("ds_read", "ds_load"))
        count["ds_write"] += line.startswith(("ds_write", "ds_store"))
        count["barrier"] += line.startswith("s_barrier")
        count["vmcnt0"] += bool(re.match(r"s_waitcnt.*vmcnt\(0\)", line))
    pending: list[int] = []
    seen: list[int] = []
    for rep in range(2) if span else (1,):
        for line in body:
            if m := LOAD.match(line):
                pending.append(WIDTH.get(m.group(2), 0) * 64)
            m = re.search(r"vmcnt\((\d+)\)", line)
            if m and line.startswith("s_waitcnt") and len(pending) > int(m.group(1)):
                if rep == 1:
                    seen.append(sum(pending))
                pending = pending[len(pending) - int(m.group(1)) :]
    loads = sum(widths.values())
    kib = sorted(s / 1024 for s in seen)
    return dict(
        meta,
        unrolled=span is None,
        loads=widths,
        **count,
        mfma_per_vmem=round(count["mfma"] / max(loads, 1), 2),
        kib_in_flight_min=round(kib[0], 2) if kib else None,
        kib_in_flight_median=round(kib[len(kib) // 2], 2) if kib else None,
    )


def main(paths: list[str]) -> None:
    for path in paths:
        print(path)
        for key, value in counters(Path(path).read_text()).items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    main(sys.argv[1:])
