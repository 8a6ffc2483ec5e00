"""bench/estimate.py: the ESTIMATE's arithmetic on numbers worked out by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from moegen.spec.expand import enumerate_variants
from moegen.verify.counters import KernelCounters, LoopCounters
from moegen.verify.counters_table import make_row, render

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("estimate", ROOT / "bench" / "estimate.py")
est = importlib.util.module_from_spec(_spec)
sys.modules["estimate"] = est  # its dataclasses look their module up there
_spec.loader.exec_module(est)

MI300X = est.DEVICES[0]
W1 = 2 * 3072 * 6144 * 2  # one expert's bf16 gate+up weights at inter 3072: 75,497,472 B
S1_OTHER = 16 * 6144 * 2 + 16 * 4 * 3072 * 2  # decode x in, stage-1 out: 589,824 B


def test_experts_touched_by_a_decode_batch():
    # 16 tokens x 4 of 128 experts: P(an expert is missed) = (1 - 4/128)^16 = 0.60171
    touched, blocks = est.expected_blocks(16, 4, 128, 16)
    assert touched == pytest.approx(50.98, abs=5e-3)  # 128 x (1 - 0.60171)
    assert blocks == pytest.approx(touched)  # <= 16 rows: one M-block per touched expert


def test_re_reads_across_m_blocks():
    # topk == experts: every expert gets every token: 100 rows = ceil(100 / 16) = 7 blocks
    assert est.expected_blocks(100, 4, 4, 16) == pytest.approx((4, 28))
    # prefill at the seed shape: ~64 rows per expert, 16-row tiles read the weights > 4 times
    touched, blocks = est.expected_blocks(2048, 4, 128, 16)
    assert touched == pytest.approx(128) and 4.0 < blocks / touched < 5.0
    _, blocks128 = est.expected_blocks(2048, 4, 128, 128)
    assert blocks128 == pytest.approx(128, rel=1e-3)  # 128-row tiles: once per N-tile


@pytest.mark.parametrize(
    "run, factor", [(32, 4.0), (64, 2.0), (96, 128 / 96), (160, 256 / 160), (128, 1.0), (1024, 1.0)]
)
def test_partial_lines_cost_whole_lines(run, factor):
    assert est.line_factor(run) == pytest.approx(factor)


def test_today_s_stage_1_decode_is_latency_bound():
    """1 KiB in flight per wave, 8 waves per SIMD, 8 B/lane row-major weight loads (32 B per
    row: a quarter of each 128 B line) at 2 us."""
    c = est.Counters(
        tile_m=16, tile_n=64, kib_in_flight=1.0, waves_per_simd=8, weight_bytes_per_lane=8
    )
    e = est.estimate(MI300X, c, stage=1, tokens=16, inter=3072, latency_s=2e-6)
    touched = 128 * (1 - (1 - 4 / 128) ** 16)
    assert e.useful_bytes == pytest.approx(touched * W1 + S1_OTHER)  # 3.85 GB
    assert e.roofline_s == pytest.approx(726e-6, rel=1e-3)  # the 726 us
    # grid: 50.98 M-blocks x 48 N-tiles x 4 waves = 9,788 > 304 CUs x 4 SIMDs x 8 = 9,728
    assert e.bandwidth == pytest.approx(9728 * 1024 / 2e-6)  # 4.98 TB/s < 5.3 TB/s
    assert e.line_bytes == pytest.approx(touched * W1 * 4 + S1_OTHER)
    assert e.time_s == pytest.approx(e.line_bytes / e.bandwidth)
    # a quarter of each line used, at 4.98 / 5.3 of the HBM bandwidth: 0.25 x 0.9398 = 0.235
    assert e.bound == "latency" and e.fraction == pytest.approx(0.2350, abs=1e-3)


def test_the_acceptance_target_reaches_the_roofline():
    """6 KiB in flight, 4 waves per SIMD, 1 KiB contiguous (preshuffled) weight loads:
    4,864 resident waves x 6 KiB / 2 us = 14.9 TB/s > 5.3 TB/s, so HBM-bound at the roofline."""
    c = est.Counters(
        tile_m=16, tile_n=64, kib_in_flight=6.0, waves_per_simd=4, weight_bytes_per_lane=16
    )
    e = est.estimate(MI300X, c, stage=1, tokens=16, inter=3072, latency_s=2e-6, weight_run=1024)
    assert e.bandwidth == MI300X.hbm_bytes_per_s and e.bound == "HBM"
    assert e.fraction == pytest.approx(1.0)
    # at 10 us the same kernel is latency-bound: 4864 x 6 KiB / 10 us = 2.99 TB/s
    slow = est.estimate(MI300X, c, stage=1, tokens=16, inter=3072, latency_s=10e-6, weight_run=1024)
    assert slow.bound == "latency"
    assert slow.fraction == pytest.approx(4864 * 6144 / 10e-6 / 5.3e12)


def test_prefill_counts_the_re_reads_and_the_mfma_time():
    c = est.Counters(
        tile_m=16, tile_n=64, kib_in_flight=6.0, waves_per_simd=4, weight_bytes_per_lane=16
    )
    e = est.estimate(MI300X, c, stage=1, tokens=2048, inter=3072, latency_s=2e-6, weight_run=1024)
    _, blocks = est.expected_blocks(2048, 4, 128, 16)
    assert e.line_bytes == pytest.approx(blocks * W1 + 2048 * 6144 * 2 + 2048 * 4 * 3072 * 2)
    assert e.compute_s == pytest.approx(2 * blocks * 16 * 6144 * 6144 / 1307.4e12)
    assert e.fraction == pytest.approx(e.roofline_s / max(e.line_bytes / 5.3e12, e.compute_s))
    assert e.fraction < 0.25  # 16-row tiles read every expert's weights 4-5 times


def test_counters_come_from_the_table(tmp_path):
    loop = LoopCounters((("dwordx4", 24),), 24, 0, 36, 0, 6.5, 9.0, 16, 16)
    k = KernelCounters("k_0", loop, 84, 0, 40, 8192, 0, 4)
    table = tmp_path / "ISA_COUNTERS.md"
    table.write_text(render([make_row("v", "production", "gfx942", "16x64x128", k)]))
    assert est.read_counters(table, "v", "gfx942") == est.Counters(16, 64, 6.5, 4, 16)
    with pytest.raises(SystemExit, match="no production row for v on gfx950"):
        est.read_counters(table, "v", "gfx950")


def test_each_token_count_uses_the_tile_dispatch_picks():
    variants = enumerate_variants(ROOT / "variants.yaml")
    base = "moe_s1_bf16_per_expert"
    (decode,) = [v for v in variants if v.name == est.dispatched(variants, base, 16)]
    (prefill,) = [v for v in variants if v.name == est.dispatched(variants, base, 2048)]
    assert decode.tile_m < prefill.tile_m  # variants.yaml: 16-row decode, 128-row prefill
    assert decode.max_tokens is not None and decode.max_tokens >= 16
    assert prefill.min_tokens <= 2048 and prefill.dtype.name == "bf16" and prefill.split_k == 1
    with pytest.raises(SystemExit, match="no variant 'moe_s9'"):
        est.dispatched(variants, "moe_s9", 16)
