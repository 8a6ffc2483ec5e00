"""The committed ISA counters table (generated/ISA_COUNTERS.md) and the variants' floors.

`moegen verify` measures moegen.verify.counters for every (variant, shape, arch) it compiles,
then compares the table on disk with what it measured: a row that differs, is missing, or (on
a full run) belongs to no measured (variant, shape, arch) makes the table stale, and verify
fails with a unified diff and the command that refreshes it, the way `moegen render --check`
does. A run narrowed by `-k`, `--arch` or `--shape` checks (and writes) only the rows it
measured and keeps the others. The file carries no timestamp and its rows are sorted, so the
same ISA always gives the same bytes; a pull request that changes a template shows, in this
file's diff, what happened to registers, occupancy and memory-level parallelism.

The table lives under generated/ but is not a render output: `moegen render` only removes the
files its MANIFEST lists, and the MANIFEST never lists this one.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moegen.core.vocabulary import FLOORS
from moegen.verify.counters import KernelCounters

TABLE_NAME = "ISA_COUNTERS.md"
FLOOR_SHAPE = "production"  # the shape at which verify holds a variant to its floors
REFRESH = "moegen verify --write-counters"
HEADER = (
    "variant",
    "shape",
    "arch",
    "tile",
    "VMEM loads/pass",
    "ds_read/pass",
    "weight B/lane",
    "MFMA/pass",
    "MFMA/load",
    "vmcnt(0)/pass",
    "KiB in flight mean",
    "KiB in flight max",
    "LDS B",
    "VGPR",
    "AGPR",
    "SGPR",
    "waves/SIMD",
    "spills",
)
PREAMBLE = f"""\
# ISA performance counters

Written by `{REFRESH}`; `moegen verify` fails when this file
differs from what it measures (never edit it by hand). Each counter is defined in
`moegen/verify/counters.py`: per wave, per pass of the steady-state K loop of the compiled
AMDGCN (`-`: the compiler unrolled the K loop completely, so there is no loop to measure).
Floors a variant must meet are declared under `floors:` in variants.yaml. An ESTIMATE of
kernel time from these counters: `python bench/estimate.py`.
"""


@dataclass(frozen=True)
class Row:
    """One table row: the (variant, shape, arch) it belongs to and its cells."""

    key: tuple[str, str, str]
    cells: tuple[str, ...]

    @property
    def line(self) -> str:
        return "| " + " | ".join(self.cells) + " |"


def _num(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def make_row(variant: str, shape: str, arch: str, tile: str, k: KernelCounters) -> Row:
    """The row of one kernel (its name is added to the variant's when it is not the only one)."""
    loop = k.loop
    if loop is None:
        loop_cells = ("-",) * 8
    else:
        widths = ", ".join(f"{n} {w}" for w, n in loop.loads_by_width) or "0"
        loop_cells = (
            widths,
            str(loop.ds_reads),
            _num(loop.weight_bytes_per_lane),
            str(loop.mfmas),
            _num(loop.mfma_per_load),
            str(loop.drains),
            _num(loop.kib_in_flight_mean),
            _num(loop.kib_in_flight_max),
        )
    cells = (
        variant,
        shape,
        arch,
        tile,
        *loop_cells,
        str(k.lds_bytes),
        str(k.vgpr),
        str(k.agpr),
        str(k.sgpr),
        str(k.waves_per_simd),
        str(k.spills),
    )
    return Row((variant, shape, arch), cells)


def render(rows: Iterable[Row]) -> str:
    """The whole file: the preamble and the rows sorted by (variant, shape, arch)."""
    lines = [
        PREAMBLE,
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += [r.line for r in sorted(rows, key=lambda r: r.key)]
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[tuple[str, str, str], Row]:
    """The rows of a table file, by (variant, shape, arch)."""
    rows = {}
    for line in text.splitlines():
        cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
        if line.startswith("| ") and len(cells) == len(HEADER) and cells[0] != HEADER[0]:
            rows[cells[:3]] = Row(cells[:3], cells)
    return rows


def expected_text(
    path: Path, measured: Sequence[Row], planned: Collection[tuple[str, str, str]] | None
) -> str:
    """What the table must read after this run: the measured rows, plus the rows on disk it
    did not measure: all of them for a run narrowed by -k/--arch/--shape (`planned` None), and
    on a whole run those of the checks it planned but could not measure (a failed compile
    fails verify anyway; its row stays until a compile measures it). A whole run drops the
    rows of every (variant, shape, arch) that no longer exists."""
    rows = {r.key: r for r in measured}
    if path.exists():
        for key, row in parse(path.read_text(encoding="utf-8")).items():
            if key not in rows and (planned is None or key in planned):
                rows[key] = row
    return render(rows.values())


def stale_diff(path: Path, expected: str) -> str:
    """A unified diff (disk -> expected) when the table is stale; '' when it is fresh."""
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == expected:
        return ""
    a = [] if old is None else old.splitlines(keepends=True)
    name = f"{path.parent.name}/{path.name}"
    fromfile = f"a/{name}" if old is not None else "/dev/null"
    return "".join(
        difflib.unified_diff(a, expected.splitlines(keepends=True), fromfile, f"b/{name}")
    )


# ---------------------------------------------------------------------------------- floors


def counter_value(k: KernelCounters, floor: str) -> float | None:
    """The counter a floor bounds (None: a loop counter of a kernel without a K loop)."""
    loop = k.loop
    loop_values = {
        "kib_in_flight": lambda: loop.kib_in_flight_mean,
        "mfma_per_load": lambda: loop.mfma_per_load,
        "weight_load_bytes_per_lane": lambda: loop.weight_bytes_per_lane,
        "drains_in_loop": lambda: loop.drains,
    }
    if floor in loop_values:
        return None if loop is None else loop_values[floor]()
    return {"waves_per_simd": k.waves_per_simd, "spills": k.spills}[floor]


def floor_violations(k: KernelCounters, floors: Mapping[str, float]) -> list[str]:
    """A message for each floor `k` does not meet (a loop counter of a kernel without a K loop
    misses its floor: verify checks floors at the production shape, where the loop must be)."""
    out = []
    for name, floor in floors.items():
        value = counter_value(k, name)
        if value is None:
            why = (
                "no steady-state K loop found in its ISA"
                if k.loop is None
                else "its K loop reads no weight through a buffer resource"
            )
            out.append(f"kernel {k.kernel}: floor {name} = {floor:g} cannot be met: {why}")
            continue
        if value < floor if FLOORS[name] == "min" else value > floor:
            way = "at least" if FLOORS[name] == "min" else "at most"
            out.append(
                f"kernel {k.kernel}: counter {name} = {_num(value)} misses its floor: "
                f"variants.yaml asks for {way} {floor:g}"
            )
    return out
