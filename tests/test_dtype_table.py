"""The README's "What is proven, per dtype" table equals the one derived here from what exists:
the expanded variants.yaml, the generated tests' structure and the H200 GPU log. A shipped
variant missing from the table, a row nothing ships, or a claim nothing backs fails the test.

Print the derived table (to paste into the README):  PYTHONPATH=$PWD python tests/test_dtype_table.py
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_LOG = ROOT / "bench" / "results" / "h200" / "boundary_gpu.log"
ARCH_COLUMNS = ("gfx942", "gfx950", "sm90")
HEADER = "| backend | dtype | stage | addressing | " + " | ".join(ARCH_COLUMNS) + " |"


def _rows() -> dict[tuple[str, str, int, str], list]:
    from moegen.spec.expand import enumerate_variants

    rows = defaultdict(list)
    for v in enumerate_variants(ROOT / "variants.yaml"):
        rows[(v.backend, v.dtype.name, v.stage, v.addressing)].append(v)
    return rows


def _gpu_passed(stage: int, dtype: str, addressing: str, log: str | None = None) -> bool:
    """The H200 log (or `log`) has passing boundary cases of this row's Triton variants and no
    failing one (older logs' names had _k1 / _k2 before _triton)."""
    if log is None:
        if not GPU_LOG.is_file():
            return False
        log = GPU_LOG.read_text()
    name = rf"test_moe_s{stage}_{dtype}_{addressing}(_k\d|_splitk\d)?_triton\.py::"
    passed = re.search(rf"^passed\s+{name}", log, re.MULTILINE)
    failed = re.search(rf"^failed\s+{name}", log, re.MULTILINE)
    return bool(passed) and not failed


def _cell(key, variants, arch: str) -> str:
    backend, dtype, stage, addressing = key
    declaring = [v for v in variants if arch in v.archs]
    if not declaring:
        return "-"
    # `moegen verify` compiles and audits every variant on every arch it declares
    marks = ["C", "A"]
    first = [v for v in declaring if v.archs[0] == arch]
    if backend == "flydsl":
        # tests/test_execute.py: every FlyDSL variant on every declared arch, small shape
        marks.append("E")
        # the generated boundary test runs its emulator cases on the variant's first arch
        if first:
            marks.append("L" if len(first) == len(declaring) else "(L)")
    elif first:  # Triton: the CPU interpreter, on the first arch's torch dtypes
        marks.append("I")
        # the generated test's interpreter point past the line (per_expert templates have it)
        past = [ROOT / "generated" / v.test_relpath for v in first]
        if all("def test_past_4gib_interpreter(" in p.read_text() for p in past):
            marks.append("Li")
        if arch == "sm90" and _gpu_passed(stage, dtype, addressing):
            marks.append("G")
    return " ".join(marks)


def derived_table() -> list[str]:
    lines = [HEADER, "|" + "---|" * (4 + len(ARCH_COLUMNS))]
    for key, variants in sorted(_rows().items()):
        backend, dtype, stage, addressing = key
        cells = [_cell(key, variants, a) for a in ARCH_COLUMNS]
        lines.append(
            f"| {backend} | {dtype} | {stage} | {addressing} | " + " | ".join(cells) + " |"
        )
    return lines


def readme_table() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.find(HEADER)
    assert start >= 0, f"README.md has no table starting with {HEADER!r}"
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append(line.strip())
    return lines


def test_readme_dtype_table_matches_what_exists():
    derived, readme = derived_table(), readme_table()
    assert readme == derived, "README.md's dtype table is stale; replace it with:\n" + "\n".join(
        derived
    )


def test_every_shipped_combination_has_a_row():
    keys = {tuple(line.strip("| ").split(" | ")[:4]) for line in readme_table()[2:]}
    missing = {(b, d, str(s), a) for (b, d, s, a) in _rows() if (b, d, str(s), a) not in keys}
    assert not missing, f"shipped variants with no row in README.md's dtype table: {missing}"


def test_gpu_claims_follow_the_log():
    """G only where the log has a passing case of the row and no failing one."""
    assert _gpu_passed(1, "bf16", "per_expert") and _gpu_passed(2, "fp8", "whole_tensor")
    log = GPU_LOG.read_text()
    # the same log with one fp8 stage-2 case failing: that row loses its G, the others keep it
    row = "test_moe_s2_fp8_per_expert_triton.py::"
    failing = log.replace(f"passed   {row}", f"failed   {row}", 1)
    assert failing != log
    assert not _gpu_passed(2, "fp8", "per_expert", failing)
    assert _gpu_passed(2, "fp8", "whole_tensor", failing)
    # a row the log never mentions gets no G
    assert not _gpu_passed(1, "int9", "per_expert", log)
    assert all(("| triton |" in line) for line in derived_table() if " G" in line)


if __name__ == "__main__":
    print("\n".join(derived_table()))
