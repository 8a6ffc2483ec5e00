"""The pipelined K loop at its edges, for every tile configuration the FlyDSL limits accept.

A prefetching loop has a prologue (tile 0), a steady state (load tile k + 1, compute tile k)
and a peeled last tile; double-buffered LDS alternates buffers by tile parity. Each of those
breaks at a different K-tile count (upstream's pipelined stage 1 silently dropped the middle
tile when model_dim / tile_k was odd), so every configuration runs with 1, 2, 3 and 4 K tiles,
and stage 1's split-K with 1 and 3 tiles per K slice, on the CPU emulator with the LDS race
check on, judged row by row against the fp32 reference (moegen.harness.verdict).

The tile configurations are rendered from the declared bf16 per_expert variants with only the
tile changed (the templates, not variants.yaml, are under test).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from moegen.backends.flydsl.limits import check_tiles
from moegen.harness import execute
from moegen.render.engine import format_one, render_raw
from moegen.spec.expand import enumerate_variants

ROOT = Path(__file__).resolve().parents[1]
# The tiles-per-regime sizes, and 48 rows: three 8-byte staging loads per thread.
TILES = [(m, n, k) for m, n, k in itertools.product((16, 32, 64, 128), (64, 128), (64, 128))]
TILES.append((48, 64, 64))
BASE = {
    "s1": "moe_s1_bf16_per_expert",
    "s1_split": "moe_s1_bf16_per_expert_splitk2",
    "s2": "moe_s2_bf16_per_expert",
}
# (kernel, K tiles per K slice): every count the loop's structure distinguishes.
EDGES = [("s1", 1), ("s1", 2), ("s1", 3), ("s1", 4), ("s1_split", 1), ("s1_split", 3)]
EDGES += [("s2", 1), ("s2", 2), ("s2", 3), ("s2", 4)]
# Every (tile, edge) runs on one arch (alternating), the decode tile on both. Unmarked (about
# 10 s each on 2 cores): the decode tile's edges and every tile's odd stage-1 count (prologue,
# steady state, peeled tail and both LDS buffers at once); the rest is marked `slow`, which
# CI and the README's test command leave out (`-m "not slow"`; run them with `-m slow`).
DECODE = (32, 64, 128)  # the shipped decode tile (variants.yaml *regimes)
ARCHS = ("gfx942", "gfx950")


def _cases():
    for tile, (i, (kernel, k_tiles)) in itertools.product(TILES, enumerate(EDGES)):
        for arch in ARCHS if tile == DECODE else (ARCHS[i % 2],):
            quick = tile == DECODE or (kernel, k_tiles) == ("s1", 3)
            yield pytest.param(
                tile,
                kernel,
                k_tiles,
                arch,
                id=f"{'x'.join(map(str, tile))}-{kernel}-k{k_tiles}-{arch}",
                marks=() if quick else pytest.mark.slow,
            )


@pytest.fixture(scope="module")
def variants():
    return {v.name: v for v in enumerate_variants(ROOT / "variants.yaml")}


def _module(variants, kernel, tile, tmp_dir: Path):
    base = variants[BASE[kernel]]
    m, n, k = tile
    v = dataclasses.replace(base, name=f"{base.name}_t{m}x{n}x{k}", tile_m=m, tile_n=n, tile_k=k)
    assert check_tiles(v) == [], check_tiles(v)
    (text,) = [
        t
        for p, t in render_raw([v], ROOT / "templates", ROOT / "variants.yaml", full=False).items()
        if p == v.module_relpath
    ]
    path = tmp_dir / f"{v.name}.py"
    path.write_text(format_one(text))
    return execute.load_module(path)


def test_every_declared_tile_size_is_accepted_by_the_limits(variants):
    """The configurations below are the ones the lead's tiles-per-regime picks from."""
    base = variants[BASE["s1"]]
    for m, n, k in TILES:
        v = dataclasses.replace(base, tile_m=m, tile_n=n, tile_k=k)
        assert check_tiles(v) == [], (m, n, k, check_tiles(v))


@pytest.mark.parametrize("tile,kernel,k_tiles,arch", list(_cases()))
def test_k_loop_edges(variants, tmp_path, tile, kernel, k_tiles, arch):
    module = _module(variants, kernel, tile, tmp_path)
    m, n, k = tile
    split = module.VARIANT["split_k"]
    if kernel == "s2":
        dims = dict(model_dim=n, inter=k_tiles * k)  # stage 2 reduces over inter
    else:
        dims = dict(model_dim=k_tiles * k * split, inter=n)
    # 4 experts, one idle: M-blocks with padding rows, and an expert with none.
    case = execute.make_case(
        module, experts=4, tokens=9, topk=2, idle_experts=(1,), arch=arch, **dims
    )
    run = execute.emulate(case.plan(), arch=arch)  # LDS race check on (the default)
    result = case.judge(run.result, ambiguous=run.ambiguous_accesses)
    assert result.passed, result.report()
