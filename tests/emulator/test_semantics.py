"""Semantics of the emulator on hand-written FlyDSL kernels (kernels.py), compiled for gfx942
and gfx950. Every expected value is derived by hand from the AMD ISA rules quoted in each test,
never from the emulator itself."""

import numpy as np
import pytest
import torch

from moegen.emulator import Emulator, ExecError, IllegalAddress, LdsRace, UnsupportedOps

ARCHS = ["gfx942", "gfx950"]


def emu(dumps, arch, spec, **kw):
    return Emulator(dumps(arch) / f"{spec}.mlir", arch=arch, **kw)


@pytest.fixture(params=ARCHS)
def arch(request):
    return request.param


def i32(*values):
    return torch.tensor(values, dtype=torch.int32)


# ---- buffer addressing with soffset 0: offset = voffset (mod 2^32); per-dword range check ----


def test_oob_load_reads_zero(dumps, arch):
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    emu(dumps, arch, "buf_copy").launch("buf_copy_0", [src, dst, 40, 256, 0])
    # num_records = 40 bytes: dwords 0..9 in range, lanes 10.. read 0
    assert dst.tolist() == list(range(1000, 1010)) + [0] * 54


def test_oob_store_dropped(dumps, arch):
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    emu(dumps, arch, "buf_copy").launch("buf_copy_0", [src, dst, 256, 16, 0])
    assert dst.tolist() == [1000, 1001, 1002, 1003] + [-1] * 60


def test_negative_voffset_wraps_and_is_range_checked(dumps, arch):
    # voffset = 4*tid - 16 as u32: tid >= 4 -> 4*(tid-4); tid < 4 -> 0xFFFFFFF0 + 4*tid, which
    # fails voffset + 4 <= num_records (0xFFFFFFF0) -> those lanes read 0 without any access.
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    emu(dumps, arch, "buf_copy").launch("buf_copy_0", [src, dst, -16, 256, -16])
    assert dst.tolist() == [0] * 4 + list(range(1000, 1060))


def test_negative_voffset_lands_4gib_past_base(dumps, arch):
    # num_records = 0xFFFFFFFF: lanes 0..2 are in range and address base + ~4 GiB (a negative
    # voffset never reaches below the base) -> illegal address, nothing stored.
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    with pytest.raises(IllegalAddress) as e:
        emu(dumps, arch, "buf_copy").launch("buf_copy_0", [src, dst, -1, 256, -16])
    msg = str(e.value)
    assert "rocdl.raw.ptr.buffer.load @ kernels.py:" in msg
    assert "3 active access" in msg and "thread 0" in msg and "num_records=0xffffffff" in msg
    assert "voffset=0xfffffff0" in msg and "nearest allocation" in msg
    assert (dst == -1).all()


def test_signed_i32_overflow_report(dumps, arch):
    e = emu(dumps, arch, "buf_copy", check_overflow=True)
    src, dst = i32(*range(64)), torch.zeros(64, dtype=torch.int32)
    e.launch("buf_copy_0", [src, dst, 0, 0, 2**31 - 8])  # 4*tid + 2^31 - 8 overflows for tid >= 2
    ((where, lanes),) = [(k, v) for k, v in e.overflows.items() if "llvm.add" in k]
    assert where.startswith("kernels.py:") and lanes == 62


def test_s_buffer_load_ignores_offset_lsbs(dumps, arch):
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.zeros(64, dtype=torch.int32)
    emu(dumps, arch, "s_load").launch("s_load_0", [src, dst, 256, 6])  # byte 6 -> dword at 4
    assert (dst == 1001).all()


# ---- LDS and barriers -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["static", "dynamic"])
def test_lds_exchange_across_waves(dumps, arch, variant):
    out = torch.full((512,), -1, dtype=torch.int32)
    emu(dumps, arch, f"lds_{variant}", race_check=True).launch(
        f"lds_reverse{'_dynamic' if variant == 'dynamic' else ''}_0", [out, 0]
    )
    expected = [(255 - t) + 1000 * wg for wg in range(2) for t in range(256)]  # each WG its own LDS
    assert out.tolist() == expected


@pytest.mark.parametrize("spec,kernel", [("race", "nobarrier"), ("raw_barrier", "raw_barrier")])
def test_lds_race_without_barrier(dumps, arch, spec, kernel):
    """No barrier, or a bare s_barrier without the release/acquire fences (test_sync.py pins
    the ISA reason): the read of another wave's LDS store is a race."""
    out = torch.zeros(512, dtype=torch.int32)
    with pytest.raises(LdsRace) as e:
        emu(dumps, arch, f"lds_{spec}", race_check=True).launch(f"lds_reverse_{kernel}_0", [out, 0])
    assert "read of LDS byte" in str(e.value) and "kernels_sync.py:" in str(e.value)


def test_lds_out_of_range(dumps, arch):
    out = torch.zeros(512, dtype=torch.int32)
    with pytest.raises(IllegalAddress) as e:  # 4*255 + 4 = 1024: past the 1024-byte allocation
        emu(dumps, arch, "lds_static").launch("lds_reverse_0", [out, 4])
    assert "LDS access out of range" in str(e.value) and "thread 255" in str(e.value)


# ---- divergence -----------------------------------------------------------------------------


def test_divergent_loop_and_if(dumps, arch):
    out = torch.full((256,), -7, dtype=torch.int32)
    e = emu(dumps, arch, "diverge")
    e.launch("diverge_0", [out])
    expected = []
    for t in range(256):
        acc = 0
        for i in range(t % 5):
            acc = acc + 10 * i if t % 2 else acc + 1
        expected.append(acc)
    assert out.tolist() == expected and e.stats["divergent_branches"] > 0


# ---- atomics --------------------------------------------------------------------------------


def test_f32_atomics_colliding_lanes(dumps, arch):
    acc, old = torch.zeros(8), torch.zeros(512)
    emu(dumps, arch, "atomics_f32").launch("atomics_f32_0", [acc, old])
    # 2 WGs x 256 lanes, 128 lanes per slot, +1.5 each (exact in f32)
    assert acc.tolist() == [192.0] * 8
    for slot in range(4):  # the old values a slot's lanes saw: 0, 1.5, ..., 190.5 in some order
        seen = sorted(old.view(2, 256)[:, slot::4].flatten().tolist())
        assert seen == [1.5 * k for k in range(128)]


@pytest.mark.parametrize("elem", ["bf16", "f16"])
def test_packed_atomic_adds_round_each_half(dumps, arch, elem):
    if elem == "bf16" and arch == "gfx942":
        pytest.skip("buffer pk_add_bf16 does not exist on gfx942")
    dt = torch.bfloat16 if elem == "bf16" else torch.float16
    tie = 2.0**-8 if elem == "bf16" else 2.0**-11  # half an ulp of 1.0
    acc = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=dt)
    lanes = torch.tensor([[tie, 0.5]] * 64, dtype=dt)
    emu(dumps, arch, f"atomics_pk_{elem}").launch(
        "atomics_pk_0", [acc.view(torch.int32), lanes.view(torch.int32).flatten()]
    )
    # 32 lanes per dword; 1 + tie rounds to even (1.0) at every add; 32 * 0.5 = 16 exactly
    assert acc.float().tolist() == [1.0, 16.0, 1.0, 16.0]


def test_cmpswap(dumps, arch):
    acc, old = torch.zeros(1, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    emu(dumps, arch, "atomics_cmpswap").launch("atomics_cmpswap_0", [acc, old])
    winners = (old == 0).nonzero().flatten().tolist()
    assert len(winners) == 1 and acc.item() == winners[0] + 1
    assert (old[old != 0] == winners[0] + 1).all()


# ---- MFMA lane layouts (AMD CDNA3/CDNA4 ISA) ------------------------------------------------

MFMA = {  # spec: (M, N, K, operand dtype, k elements per lane)
    "16x16x16_bf16": (16, 16, 16, torch.bfloat16, 4),
    "16x16x16_f16": (16, 16, 16, torch.float16, 4),
    "16x16x32_bf16": (16, 16, 32, torch.bfloat16, 8),
    "16x16x32_f16": (16, 16, 32, torch.float16, 8),
    "32x32x8_bf16": (32, 32, 8, torch.bfloat16, 4),
    "16x16x32_fp8": (16, 16, 32, "fp8", 8),
    "16x16x32_i8": (16, 16, 32, torch.int8, 8),
}


def pack_operand(mat, kl):
    """mat [rows, K] -> per-lane registers [64, kl]: row i, k -> lane i + rows*(k // kl), k % kl."""
    rows, k = mat.shape
    regs = torch.zeros((64, kl), dtype=mat.dtype)
    for i in range(rows):
        for kk in range(k):
            regs[i + rows * (kk // kl), kk % kl] = mat[i, kk]
    return regs


def unpack_result(regs, m, n):
    """[64, m*n/64] -> D [m, n]: lane l holds column l % n, element r row 8(r//4) + 4(l//n) + r%4."""
    d = torch.zeros((m, n), dtype=regs.dtype)
    for lane in range(64):
        for r in range(regs.shape[1]):
            d[8 * (r // 4) + 4 * (lane // n) + r % 4, lane % n] = regs[lane, r]
    return d


@pytest.mark.parametrize("shape", MFMA)
def test_mfma_layout(dumps, arch, shape):
    m, n, k, dt, kl = MFMA[shape]
    if arch == "gfx942" and shape in ("16x16x32_bf16", "16x16x32_f16"):
        pytest.skip("gfx950 instruction")
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-3, 4, (m, k), generator=g)
    b = torch.randint(-3, 4, (k, n), generator=g)
    c = torch.randint(-50, 50, (m, n), generator=g)
    store = {"fp8": torch.float8_e4m3fnuz if arch == "gfx942" else torch.float8_e4m3fn}.get(dt, dt)
    acc_dt = torch.int32 if dt == torch.int8 else torch.float32
    A = pack_operand(a.to(store), kl).contiguous().view(torch.uint8)
    B = pack_operand(b.T.contiguous().to(store), kl).contiguous().view(torch.uint8)
    C = torch.zeros((64, m * n // 64), dtype=acc_dt)
    for lane in range(64):  # C in the result layout
        for r in range(m * n // 64):
            C[lane, r] = c[8 * (r // 4) + 4 * (lane // n) + r % 4, lane % n]
    D = torch.zeros_like(C)
    emu(dumps, arch, f"mfma_{shape}").launch(
        "mfma_0", [A.flatten(), B.flatten(), C.view(-1), D.view(-1)]
    )
    assert torch.equal(unpack_result(D, m, n), (a @ b + c).to(acc_dt))


def test_mfma_16x16x16_identity_spot(dumps, arch):
    # A = I, B[k, j] = 16k + j -> D = B; lane 17 element 2 holds row 4*(17//16)+2 = 6, col 1: 97
    a = torch.eye(16)
    b = torch.arange(256.0).view(16, 16)
    A = pack_operand(a.to(torch.bfloat16), 4).contiguous().view(torch.uint8)
    B = pack_operand(b.T.contiguous().to(torch.bfloat16), 4).contiguous().view(torch.uint8)
    C, D = torch.zeros(64, 4), torch.zeros(64, 4)
    emu(dumps, arch, "mfma_16x16x16_bf16").launch(
        "mfma_0", [A.flatten(), B.flatten(), C.view(-1), D.view(-1)]
    )
    assert D[17, 2].item() == 97.0 and D[0].tolist() == [0.0, 16.0, 32.0, 48.0]


# ---- conversions and math -------------------------------------------------------------------


def test_conversions_and_math(dumps, arch):
    x = torch.full((64,), 4.0)
    x[1], x[2] = 1 + 2**-8, 1 + 3 * 2**-8  # bf16 ties: -> 1.0 (even), -> 1 + 2^-6 (even)
    x[3], x[4] = 1 + 2**-11, 1 + 3 * 2**-11  # f16 ties: -> 1.0, -> 1 + 2^-9
    x[5] = 1.0
    half, words, math = (
        torch.zeros(128, dtype=torch.int16),
        torch.zeros(64, dtype=torch.int32),
        torch.zeros(640),
    )
    emu(dumps, arch, "convert").launch("convert_0", [x, half, words, math])
    bf = half[:64].view(torch.bfloat16).float()
    f16 = half[64:].view(torch.float16).float()
    assert bf[1].item() == 1.0 and bf[2].item() == 1 + 2**-6 and bf[0].item() == 4.0
    assert f16[3].item() == 1.0 and f16[4].item() == 1 + 2**-9
    m = math.view(10, 64)
    assert m[:6, 0].tolist() == [
        16.0,
        0.25,
        2.0,
        0.5,
        17.0,
        4.0,
    ]  # exp2 rcp log2 rsq fma maxnum at 4
    assert m[6, 1].item() == 1.0 and m[7, 4].item() == 1 + 2**-9  # fpext of the rounded values
    one, neg_one = (
        (0x40, 0xC0) if arch == "gfx942" else (0x38, 0xB8)
    )  # e4m3 fnuz: bias 8; OCP: bias 7
    assert words[5].item() == one | (neg_one << 8)
    assert m[8, 5].item() == 1.0 and m[9, 5].item() == -1.0 and m[8, 0].item() == 4.0


# ---- int4 dequantization (W4A16) -------------------------------------------------------------


def test_int4_dequant(dumps, arch):
    """Packed int4 -> bf16(value * scale), by hand. A dword holds 8 consecutive K values, value i
    in bits [4i, 4i + 4), two's complement (0x8 = -8, 0xF = -1); a 16-byte load is 4 dwords in
    K order. The scale is bf16; value * scale is exact in f32 and rounded once to bf16, to
    nearest even (AMD ISA v_cvt RNE; LLVM fptrunc)."""
    w = torch.zeros(64, 4, dtype=torch.int64)
    s = torch.ones(64, dtype=torch.float32)
    w[0] = torch.tensor([0x76543210, 0xFEDCBA98, 0x00000000, 0x8F1F7F80])
    s[0] = 1.0
    w[1] = torch.tensor([0x76543210, 0xFEDCBA98, 0x11111111, 0x88888888])
    s[1] = -0.5
    w[2] = torch.tensor([0x00000003, 0x00000005, 0x00000009, 0x000000F7])  # 3, 5, -7, 7, -1
    s[2] = 1 + 2**-7  # bf16 0x3F81: products 3.0234375, 5.0390625, -7.0546875 are not bf16
    out = torch.zeros(64 * 16, dtype=torch.int32)
    emu(dumps, arch, "int4_dequant").launch(
        "int4_dequant_0", [w.to(torch.int32).view(-1), s.to(torch.bfloat16), out]
    )
    got = out.view(torch.bfloat16).float().view(64, 32)
    low = list(range(8)) + list(range(-8, 0))  # dwords 0 and 1 of lanes 0 and 1
    # 0x8F1F7F80 from its low nibble up: 0, 8, F, 7, F, 1, F, 8
    assert got[0].tolist() == low + [0.0] * 8 + [0.0, -8.0, -1.0, 7.0, -1.0, 1.0, -1.0, -8.0]
    assert got[1].tolist() == [v * -0.5 for v in low] + [-0.5] * 8 + [4.0] * 8
    # 3 * 1.0078125 = 3 + 1.5 ulp (ulp 2**-6 in [2, 4)): a tie, to the even 3.03125;
    # 5 * 1.0078125 = 5 + 1.25 ulp (ulp 2**-5): down to 5.03125; -7.0546875 = -(7 + 1.75 ulp):
    # -7.0625; 7 and -1 (0xF7: value 0 = 7, value 1 = -1) likewise 7.0625 and -1.0078125 (exact)
    assert got[2, 0].item() == 3.03125 and got[2, 8].item() == 5.03125
    assert got[2, 16].item() == -7.0625
    assert got[2, 24].item() == 7.0625 and got[2, 25].item() == -1.0078125
    assert (got[2, [1, 2, 7, 9, 15, 17, 23, 26, 31]] == 0).all()
    assert (got[3:] == 0).all()  # zero bytes with scale 1


def test_int4_unpack_i8(dumps, arch):
    """"split_nibbles" int4 -> int8, by hand (upstream's W4A8 packing): a dword's byte j holds
    value j in its low nibble and value j + 4 in its high one, two's complement (0x8 = -8,
    0xF = -1); the 8 values come out in K order, as 8 int8 bytes: v0..v3 (the low nibbles),
    then v4..v7 (the high ones). A lane's two dwords give 16 bytes."""
    w = torch.zeros(64, 2, dtype=torch.int64)
    w[0] = torch.tensor([0x76543210, 0xFEDCBA98])  # low nibbles 0 2 4 6 / 8 A C E
    w[1] = torch.tensor([0x8F1F7F80, 0x00000000])
    w[2] = torch.tensor([0xFFFFFFFF, 0x88888888])
    out = torch.zeros(64 * 4, dtype=torch.int32)
    emu(dumps, arch, "int4_unpack_i8").launch("int4_unpack_i8_0", [w.to(torch.int32).view(-1), out])
    got = out.view(torch.int8).view(64, 16)
    # 0x76543210: bytes 0x10 0x32 0x54 0x76 -> low nibbles 0 2 4 6 (v0..v3), high 1 3 5 7 (v4..v7)
    assert got[0, :8].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    # 0xFEDCBA98: bytes 98 BA DC FE -> low 8 A C E = -8 -6 -4 -2, high 9 B D F = -7 -5 -3 -1
    assert got[0, 8:].tolist() == [-8, -6, -4, -2, -7, -5, -3, -1]
    # 0x8F1F7F80: bytes 80 7F 1F 8F -> low 0 F F F = 0 -1 -1 -1, high 8 7 1 8 = -8 7 1 -8
    assert got[1].tolist() == [0, -1, -1, -1, -8, 7, 1, -8] + [0] * 8
    assert got[2].tolist() == [-1] * 8 + [-8] * 8
    assert (got[3:] == 0).all()


# ---- cross-lane ops -------------------------------------------------------------------------


def test_cross_lane_ops(dumps, arch):
    out = torch.zeros(384, dtype=torch.int32)
    emu(dumps, arch, "cross_lane").launch("cross_lane_0", [out])
    lanes = np.arange(64)
    assert (out[:64] == 7).all()  # readfirstlane(3*lane + 7) = lane 0's value
    assert (out[64:128] == 22).all()  # readlane(., 5)
    mask = sum(1 << int(l) for l in lanes if l % 3 == 0)
    ballot = out[128:256].view(64, 2).numpy().view(np.uint32).astype(np.uint64)
    assert all(int(lo) | (int(hi) << 32) == mask for lo, hi in ballot)
    assert out[256:320].tolist() == list(range(64))  # mbcnt over all ones = lane id
    assert out[320:384].tolist() == [10 * (63 - l) for l in range(64)]  # bpermute


def test_cross_lane_op_under_partial_exec_is_an_error(dumps, arch):
    with pytest.raises(ExecError, match="partial EXEC mask"):
        emu(dumps, arch, "ballot_partial").launch(
            "ballot_partial_0", [torch.zeros(128, dtype=torch.int32)]
        )


def test_unknown_ops_listed_before_running(dumps, arch):
    out = torch.full((64,), -1, dtype=torch.int32)
    with pytest.raises(UnsupportedOps) as e:
        emu(dumps, arch, "unknown_ops").launch("unknown_ops_0", [out])
    assert "rocdl.ds_swizzle  at kernels.py:" in str(e.value) and "rocdl.update.dpp" in str(e.value)
    assert (out == -1).all()


def test_operand_split_keeps_byte_order(dumps, arch):
    """The fp8 kernels feed their MFMA one i64 per 8 loaded bytes (llvm.bitcast of two dwords,
    extracted from a 16-byte load): the i64 must be those 8 bytes in memory order (little
    endian: dword 2p is its low half). A swapped pair would still pass the kernels' own
    boundary tests (A and B permuted alike leave every dot product unchanged), so it is
    pinned here. The 16-bit path (vector<4xi16>) is checked the same way."""
    data = torch.arange(256, dtype=torch.int32) * 0x01010101 + 0x00010203
    out = torch.zeros(512, dtype=torch.int32)
    emu(dumps, arch, "operand_split").launch("operand_split_0", [data, out])
    assert out[:256].equal(data)  # the i64 operands, stored as 8 bytes each
    assert out[256:].equal(data)  # the bf16 operands, bitcast back to dwords
    as_i64 = out[:256].view(torch.int64)
    lo, hi = data[0::2].to(torch.int64) & 0xFFFFFFFF, data[1::2].to(torch.int64)
    assert as_i64.equal(lo | (hi << 32))
