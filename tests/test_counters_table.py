"""The committed ISA counters table: written and checked by `moegen verify` (whole runs and
-k/--arch/--shape subsets), left alone by `moegen render`; and the variants' floors."""

from __future__ import annotations

from pathlib import Path

import pytest

from moegen.backends.flydsl.compile import CompileResult
from moegen.backends import get_backend
from moegen.cli import verify as verify_cli
from moegen.cli.main import main as moegen_main
from moegen.spec.expand import enumerate_variants
from moegen.verify import plan
from moegen.verify.counters import KernelCounters, LoopCounters
from moegen.verify.counters_table import TABLE_NAME, floor_violations, parse

ROOT = Path(__file__).resolve().parents[1]


def loop(kib: float = 1.0, drains: int = 12, mfmas: int = 24) -> LoopCounters:
    return LoopCounters(
        loads_by_width=(("dwordx2", 36),),
        loads=36,
        ds_reads=0,
        mfmas=mfmas,
        drains=drains,
        kib_in_flight_mean=kib,
        kib_in_flight_max=1.5,
        weight_loads=24,
        weight_bytes_per_lane=8,
    )


def counters(vgpr: int = 20, kib: float = 1.0, with_loop: bool = True) -> KernelCounters:
    return KernelCounters("k_0", loop(kib) if with_loop else None, vgpr, 0, 24, 0, 0, 8)


# stage 1, bf16, split-K 1, the decode tile: one variant per addressing mode
PAIR = ["-k", "moe_s1_bf16_per_expert", "-k", "moe_s1_bf16_whole_tensor"]


@pytest.fixture
def fake_verify(project_copy, monkeypatch):
    """`moegen verify` over the real spec with compiles replaced: every check measures
    MEASURED[variant] (default: `counters()`), so the table logic runs without a compiler."""
    assert moegen_main(["render", *PAIR]) == 0
    measured: dict[str, KernelCounters | None] = {}

    def run_checks(checks, jobs, on_done, cache=None):
        outcomes = []
        for c in checks:
            compiled = CompileResult(c.target, 0, (), (), "", "", 0.0, None, None, cached=True)
            k = measured.get(c.variant.name, counters())
            if k is None:  # a compile that failed: nothing measured
                outcomes.append(plan.Outcome(c, compiled, (), ("compile failed",), (), ()))
            else:
                outcomes.append(plan.Outcome(c, compiled, (), (), (), (k,)))
        return outcomes

    monkeypatch.setattr(verify_cli, "run_checks", run_checks)
    # The table is FlyDSL's; Triton's own verify (real compiles of every Triton variant, minutes
    # on 2 cores for each whole-spec run here) has nothing to do with it.
    triton = get_backend("triton")
    monkeypatch.setattr(type(triton), "verify_variants", lambda self, variants, **kw: (True, ""))
    return measured


SELECT = [*PAIR, "--arch", "gfx942"]


def test_verify_fails_with_a_diff_until_the_table_is_written(fake_verify, project_copy, capsys):
    table = project_copy / "generated" / TABLE_NAME
    assert verify_cli.main(SELECT) == 1
    out, err = capsys.readouterr()
    assert "+++ b/generated/ISA_COUNTERS.md" in out
    (v,) = enumerate_variants(ROOT / "variants.yaml", ["moe_s1_bf16_per_expert"])
    tile = f"{v.tile_m}x{v.tile_n}x{v.tile_k}"
    assert f"| moe_s1_bf16_per_expert | production | gfx942 | {tile} | 36 dwordx2 |" in out
    refresh = f"`moegen verify --write-counters {' '.join(PAIR)} --arch gfx942`"
    assert refresh in err and not table.exists()

    assert verify_cli.main([*SELECT, "--write-counters"]) == 0
    rows = parse(table.read_text())
    # whole_tensor is compiled with the experts its launcher admits: production[E=56]
    assert {(v, s.split("[")[0], a) for v, s, a in rows} == {
        (v, s, "gfx942")
        for v in ("moe_s1_bf16_per_expert", "moe_s1_bf16_whole_tensor")
        for s in ("small", "production")
    }
    assert verify_cli.main(SELECT) == 0

    # a template change that moves a counter: the table is stale, the diff shows the row
    fake_verify["moe_s1_bf16_whole_tensor"] = counters(vgpr=84, kib=6.5)
    capsys.readouterr()
    assert verify_cli.main(SELECT) == 1
    out = capsys.readouterr().out
    changed = [line for line in out.splitlines() if line.startswith(("-|", "+|"))]
    assert len(changed) == 4  # the two shapes of the one variant, old and new
    assert all("moe_s1_bf16_whole_tensor" in line for line in changed)
    assert any(line.startswith("+|") and "| 6.5 |" in line and "| 84 |" in line for line in changed)


def test_a_narrowed_run_checks_and_writes_only_its_rows(fake_verify, project_copy, capsys):
    table = project_copy / "generated" / TABLE_NAME
    assert verify_cli.main([*SELECT, "--write-counters"]) == 0
    before = parse(table.read_text())
    fake_verify["moe_s1_bf16_whole_tensor"] = counters(kib=3.0)
    # the other variant's rows are not measured by this run: not checked, not dropped
    assert verify_cli.main(["-k", "moe_s1_bf16_per_expert", "--arch", "gfx942"]) == 0
    assert (
        verify_cli.main(
            ["-k", "moe_s1_bf16_whole_tensor", "--arch", "gfx942", "--shape", "small"]
        )
        == 1
    )
    capsys.readouterr()
    argv = [
        "-k",
        "moe_s1_bf16_whole_tensor",
        "--arch",
        "gfx942",
        "--shape",
        "small",
        "--write-counters",
    ]
    assert verify_cli.main(argv) == 0
    after = parse(table.read_text())
    assert set(after) == set(before)
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {("moe_s1_bf16_whole_tensor", "small", "gfx942")}


def test_a_whole_run_drops_rows_of_variants_that_are_gone(fake_verify, project_copy, capsys):
    table = project_copy / "generated" / TABLE_NAME
    assert verify_cli.main([*SELECT, "--write-counters"]) == 0
    stale_row = "| moe_s9_gone | small | gfx942 |" + " x |" * 15
    table.write_text(table.read_text() + stale_row + "\n")
    assert verify_cli.main(SELECT) == 0  # narrowed: the unknown row is not this run's business
    assert verify_cli.main(["--write-counters"]) == 0  # whole run: every variant, every arch
    rows = parse(table.read_text())
    assert ("moe_s9_gone", "small", "gfx942") not in rows
    assert ("moe_s2_fp16_per_expert", "production", "gfx950") in rows


def test_a_failed_compile_keeps_its_row(fake_verify, project_copy, capsys):
    table = project_copy / "generated" / TABLE_NAME
    assert verify_cli.main(["--write-counters"]) == 0
    before = table.read_text()
    fake_verify["moe_s1_bf16_per_expert"] = None
    capsys.readouterr()
    assert verify_cli.main([]) == 1  # the failure fails the run ...
    assert "differs" not in capsys.readouterr().err  # ... but the table is not stale
    assert verify_cli.main(["--write-counters"]) == 1
    assert table.read_text() == before


def test_render_neither_removes_nor_reports_the_table(mini):
    """generated/ISA_COUNTERS.md is not in the MANIFEST: a full render keeps it and
    `render --check` does not call it an orphan."""
    assert moegen_main(["render"]) == 0
    table = mini / "generated" / TABLE_NAME
    table.write_text("# ISA performance counters\n")
    manifest = (mini / "generated" / "MANIFEST").read_text()
    assert TABLE_NAME not in manifest
    text = (mini / "variants.yaml").read_text()
    (mini / "variants.yaml").write_text(text.replace("tile: {m: 32}", "tile: {m: 48}"))
    assert moegen_main(["render"]) == 0  # removes the t32 orphans
    assert table.read_text() == "# ISA performance counters\n"
    assert moegen_main(["render", "--check"]) == 0


def test_the_committed_table_covers_every_variant_shape_and_arch():
    """The repository's table has one row per (variant, shape, arch) verify plans."""
    rows = parse((ROOT / "generated" / TABLE_NAME).read_text())
    spec = ROOT / "variants.yaml"
    flydsl = [v for v in enumerate_variants(spec) if v.backend == "flydsl"]  # Triton: no table
    checks = plan.plan_checks(spec, flydsl, [], Path("/nonexistent"))
    assert set(rows) == {(c.variant.name, c.shape_cell, c.arch) for c in checks}


@pytest.mark.parametrize(
    "floors, k, messages",
    [
        ({"kib_in_flight": 1}, counters(kib=1.0), []),  # equal meets a floor
        ({"kib_in_flight": 6}, counters(kib=1.0), ["kib_in_flight = 1 misses"]),
        ({"drains_in_loop": 0}, counters(), ["drains_in_loop = 12 misses", "at most 0"]),
        ({"waves_per_simd": 4, "spills": 0}, counters(), []),
        ({"mfma_per_load": 1.5}, counters(), ["mfma_per_load = 0.67 misses", "at least 1.5"]),
        # no K loop: every loop floor is missed, the others still judged
        ({"kib_in_flight": 6}, counters(with_loop=False), ["no steady-state K loop"]),
        ({"spills": 0, "waves_per_simd": 8}, counters(with_loop=False), []),
    ],
)
def test_floor_violations(floors, k, messages):
    found = floor_violations(k, floors)
    assert len(found) == (1 if messages else 0)
    for m in messages:
        assert m in found[0]


def test_a_weight_floor_fails_a_loop_that_reads_no_weight():
    bare = LoopCounters((("dword", 1),), 1, 0, 1, 0, 0.25, 0.25, 0, None)
    k = KernelCounters("k_0", bare, 20, 0, 24, 0, 0, 8)
    (msg,) = floor_violations(k, {"weight_load_bytes_per_lane": 16})
    assert "reads no weight through a buffer resource" in msg
