"""moegen.verify.counters: each counter's definition, pinned on hand-written AMDGCN."""

from __future__ import annotations

import pytest

from moegen.verify.counters import (
    Insn,
    in_flight_kib,
    k_loop,
    kernel_counters,
    listing,
    loop_counters,
    waitcnt_vmcnt,
    waves_per_simd,
)

# Two global pointers: x at kernarg 0, the weight at kernarg 8 (the kernels' 2nd tensor).
# s[8:11] is the weight's V# (word 1 = weight_hi & 0xffff), s[12:15] the activations'.
PROLOGUE = """\
k:
\ts_load_dwordx2 s[4:5], s[0:1], 0x8
\ts_load_dwordx2 s[6:7], s[0:1], 0x0
\ts_waitcnt lgkmcnt(0)
\ts_and_b32 s9, s5, 0xffff
\ts_mov_b32 s8, s4
\ts_and_b32 s13, s7, 0xffff
\ts_mov_b32 s12, s6
"""
EPILOGUE = """\
\ts_endpgm
.Lfunc_end0:
\t.amdgpu_metadata
---
amdhsa.kernels:
  - .name: k
    .args:
      - {.offset: 0, .size: 8, .value_kind: global_buffer}
      - {.offset: 8, .size: 8, .value_kind: global_buffer}
    .vgpr_count: 20
    .sgpr_count: 24
    .agpr_count: 0
    .group_segment_fixed_size: 8192
    .max_flat_workgroup_size: 256
    .vgpr_spill_count: 0
    .sgpr_spill_count: 0
    .private_segment_fixed_size: 0
...
\t.end_amdgpu_metadata
"""


def kernel(loop: str) -> str:
    return PROLOGUE + loop + EPILOGUE


# load, wait for everything, compute: a weight load of 16 B/lane, an activation load of 8 B/lane
LOAD_WAIT_COMPUTE = """\
.LBB0_1:
\tbuffer_load_dwordx4 v[0:3], v10, s[8:11], 0 offen
\tbuffer_load_dwordx2 v[4:5], v11, s[12:15], 0 offen
\ts_waitcnt vmcnt(0) lgkmcnt(0)
\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]
\ts_cbranch_scc1 .LBB0_1
"""

# software pipelined: this pass's two loads wait one pass, behind vmcnt(2)
PIPELINED = """\
.LBB0_1:
\tbuffer_load_dwordx4 v[0:3], v10, s[8:11], 0 offen
\tbuffer_load_dwordx4 v[12:15], v11, s[12:15], 0 offen
\ts_waitcnt vmcnt(2) lgkmcnt(0)
\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]
\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]
\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]
\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]
\ts_cbranch_scc0 .LBB0_1
"""


def test_load_wait_compute_loop():
    (k,) = kernel_counters(kernel(LOAD_WAIT_COMPUTE), "gfx942", weight_ptr=1)
    loop = k.loop
    assert loop.loads_by_width == (("dwordx4", 1), ("dwordx2", 1))
    assert (loop.loads, loop.mfmas, loop.drains) == (2, 1, 1)
    assert loop.mfma_per_load == 0.5
    # at the drain: 1024 B + 512 B outstanding
    assert (loop.kib_in_flight_mean, loop.kib_in_flight_max) == (1.5, 1.5)
    # only the load through the weight's V# counts as a weight load
    assert (loop.weight_loads, loop.weight_bytes_per_lane) == (1, 16)
    assert (k.vgpr, k.sgpr, k.lds_bytes, k.spills) == (20, 24, 8192, 0)


def test_pipelined_loop_counts_the_previous_pass_in_flight():
    (k,) = kernel_counters(kernel(PIPELINED), "gfx942", weight_ptr=1)
    loop = k.loop
    assert loop.drains == 0
    assert loop.mfma_per_load == 2.0
    # second pass: its 2 loads + the previous pass's 2 (4 x 1 KiB) when vmcnt(2) retires 2
    assert (loop.kib_in_flight_mean, loop.kib_in_flight_max) == (4.0, 4.0)


def test_in_flight_mean_and_max_over_the_waits_that_retire_loads():
    # the seed's stage-1 pattern: 3 loads of 512 B, vmcnt(1), MFMA, vmcnt(0), MFMA
    body = k_loop(
        listing(
            kernel(
                ".LBB0_1:\n"
                + "\tbuffer_load_dwordx2 v[0:1], v9, s[12:15], 0 offen\n" * 3
                + "\ts_waitcnt vmcnt(1)\n\tv_mfma_f32_16x16x16_bf16 v[2:5], v[0:1], v[0:1], v[2:5]\n"
                + "\ts_waitcnt vmcnt(0)\n\tv_mfma_f32_16x16x16_bf16 v[2:5], v[0:1], v[0:1], v[2:5]\n"
                + "\ts_waitcnt vmcnt(0)\n"  # retires nothing: not recorded, still a drain
                + "\ts_cbranch_scc1 .LBB0_1\n"
            ),
            "k",
        )
    )
    loop = loop_counters(body)
    assert (loop.kib_in_flight_mean, loop.kib_in_flight_max) == (1.0, 1.5)
    assert loop.drains == 2
    assert loop.weight_bytes_per_lane is None  # no weight indices given


def test_stores_occupy_vmcnt_but_carry_no_load_bytes():
    body = [
        Insn(0, "buffer_load_dwordx4", "v[0:3], v1, s[8:11], 0 offen"),
        Insn(1, "buffer_store_dwordx4", "v[0:3], v1, s[12:15], 0 offen"),
        Insn(2, "s_waitcnt", "vmcnt(1)"),  # retires the load only: 1 KiB + the store's 0
        Insn(3, "s_waitcnt", "vmcnt(0)"),  # retires the store only: not recorded
    ]
    assert in_flight_kib(body) == (1.0, 1.0)


def test_no_loop_when_the_k_loop_is_unrolled():
    straight = (
        "\tbuffer_load_dwordx4 v[0:3], v10, s[8:11], 0 offen\n\ts_waitcnt vmcnt(0)\n"
        "\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]\n"
    )
    (k,) = kernel_counters(kernel(straight), "gfx942", weight_ptr=1)
    assert k.loop is None


def test_the_innermost_loop_with_mfmas_is_the_k_loop():
    nested = (
        ".LBB0_1:\n\tv_mfma_f32_16x16x16_bf16 v[6:9], v[4:5], v[0:1], v[6:9]\n"
        + PIPELINED.replace(".LBB0_1", ".LBB0_2")
        + "\ts_cbranch_scc1 .LBB0_1\n"
        # a later loop without MFMAs (an epilogue) is not a K loop
        + ".LBB0_3:\n\tbuffer_load_dword v1, v2, s[12:15], 0 offen\n\ts_waitcnt vmcnt(0)\n"
        + "\ts_branch .LBB0_3\n"
    )
    body = k_loop(listing(kernel(nested), "k"))
    assert body is not None and [i.mnemonic for i in body].count("v_mfma_f32_16x16x16_bf16") == 4
    assert body[-1].operands == ".LBB0_2"


@pytest.mark.parametrize(
    "operands, vmcnt",
    [
        ("vmcnt(0)", 0),
        ("vmcnt(0) lgkmcnt(0)", 0),
        ("vmcnt(3) expcnt(0)", 3),
        ("lgkmcnt(0)", None),
        ("0", 0),  # immediate: every counter 0
        ("0xc07f", None),  # immediate: vmcnt 63 (its maximum) does not wait
        ("0x0f72", 2),
    ],
)
def test_waitcnt_vmcnt(operands, vmcnt):
    assert waitcnt_vmcnt(Insn(0, "s_waitcnt", operands)) == vmcnt


@pytest.mark.parametrize(
    "arch, vgpr, agpr, sgpr, lds, waves",
    [
        ("gfx942", 20, 0, 24, 0, 8),  # capped at 8 waves per SIMD
        ("gfx942", 128, 0, 24, 0, 4),  # 512 / 128
        ("gfx942", 130, 0, 24, 0, 3),  # granule 8: 136 -> 512 // 136
        ("gfx942", 100, 0, 24, 0, 4),  # granule 8: 104 -> 4 (a granule of 4 would give 5)
        ("gfx942", 82, 64, 24, 0, 3),  # alignTo(82, 4) + 64 = 148 -> 152
        ("gfx942", 190, 0, 24, 0, 2),
        ("gfx942", 20, 0, 102, 0, 7),  # SGPR-limited
        ("gfx942", 20, 0, 24, 8 * 1024, 8),  # 8 workgroups of 4 waves on 4 SIMDs
        ("gfx942", 20, 0, 24, 64 * 1024, 1),
        ("gfx950", 20, 0, 24, 64 * 1024, 2),  # 160 KiB of LDS per CU
    ],
)
def test_waves_per_simd(arch, vgpr, agpr, sgpr, lds, waves):
    assert waves_per_simd(arch, vgpr, agpr, sgpr, lds) == waves


def test_unknown_arch_is_an_error():
    with pytest.raises(ValueError, match="gfx1100"):
        waves_per_simd("gfx1100", 20, 0, 20)
