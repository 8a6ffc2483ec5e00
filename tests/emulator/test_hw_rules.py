"""The hardware rules the emulator follows (or refuses), on compiled kernels (kernels.py) for
gfx942 and gfx950: soffset addressing and range checks, the `voffset + inst_offset` ambiguity,
unsigned offset wraps in the overflow report, V# flags, s_buffer_load out of range, fp8
out-of-range conversions, f32 buffer atomic denormal flush. Expected values are derived by hand
in the comments, never from the emulator."""

import math

import pytest
import torch

from moegen.emulator import AmbiguousAccess, Emulator, EmulatorError

ARCHS = ["gfx942", "gfx950"]
LOAD = "rocdl.raw.ptr.buffer.load"


@pytest.fixture(params=ARCHS)
def arch(request):
    return request.param


def emu(dumps, arch, spec, **kw):
    return Emulator(dumps(arch) / f"{spec}.mlir", arch=arch, **kw)


def src_dst():
    """Src[k] = 1000 + k (64 dwords, exactly 256 bytes); Dst: 68 dwords of -1."""
    return torch.arange(1000, 1064, dtype=torch.int32), torch.full((68,), -1, dtype=torch.int32)


# ---- soffset: ((voffset + inst_offset) mod 2^32) + soffset, range check includes soffset ----
# buf_soffset: v = Src.load(voffset (4*tid + vbias) + 16, soffset s_load), num_records src_bytes;
#              Dst.store(v, voffset 4*tid, soffset s_store), num_records dst_bytes.

SOFFSET_CASES = {
    # soffset near 2^32: 4t + 16 + 0xFFFFFFF0 = 2^32 + 4t > num_records: every load reads 0
    # (the old rule wrapped it to 4t and read Src[t])
    "soffset_near_2^32": ((256, 272, 0, -16, 0), [0] * 64 + [-1] * 4),
    # voffset 0x8000_0000 + 4t (vbias 0x7FFFFFF0, + 16) + soffset 0x8000_0000 = 2^32 + 4t:
    # out of range even for num_records 0xFFFFFFFF (the old rule read Src[t])
    "voffset+soffset_cross_2^32": ((-1, 272, 0x7FFFFFF0, -(2**31), 0), [0] * 64 + [-1] * 4),
    # load soffset 4 past num_records: offset 4t + 20, in range iff 4t + 24 <= 256 iff t <= 58:
    # Dst[t] = Src[t + 5] = 1005 + t; t = 59..63 read 0 (the old check ignored soffset and
    # lane 59 read past Src)
    "load_soffset_past_num_records": (
        (256, 272, 0, 4, 0),
        [1005 + t for t in range(59)] + [0] * 5 + [-1] * 4,
    ),
    # store soffset 16 past num_records 256: v = Src[t + 4] (t <= 59) or 0; the store at
    # 4t + 16 is in range iff 4t + 20 <= 256 iff t <= 59: Dst[k] = Src[k] for k = 4..63, the
    # stores of t = 60..63 (to Dst[64..67]) are dropped (the old rule wrote 0 there)
    "store_soffset_past_num_records": (
        (256, 256, 0, 0, 16),
        [-1] * 4 + list(range(1004, 1064)) + [-1] * 4,
    ),
}


@pytest.mark.parametrize("case", SOFFSET_CASES)
def test_soffset_rules(dumps, arch, case):
    args, expected = SOFFSET_CASES[case]
    src, dst = src_dst()
    e = emu(dumps, arch, "buf_soffset")
    e.launch("buf_soffset_0", [src, dst, *args])
    assert dst.tolist() == expected
    assert e.ambiguous_accesses == []  # no voffset carries here: (4t + vbias) + 16 < 2^32


# ---- voffset + inst_offset crossing 2^32 -----------------------------------------------------


@pytest.mark.parametrize("src_bytes, lanes", [(256, range(4)), (8, range(2))])
def test_inst_offset_crossing_2_32_is_reported(dumps, arch, src_bytes, lanes):
    # vbias -16: voffset = (4t - 16) + 16; for t = 0..3 the +16 (which the backend may fold into
    # inst_offset) carries past 2^32. Wrapped reading (executed): offset 4t, Dst[t] = Src[t] while
    # 4t + 4 <= src_bytes; unwrapped: 2^32 + 4t, out of range. Recorded only where the readings
    # differ: t <= 3 with 256 bytes, t <= 1 with 8 bytes. Twice: the list accumulates.
    e = emu(dumps, arch, "buf_soffset")
    for _ in range(2):
        src, dst = src_dst()
        e.launch("buf_soffset_0", [src, dst, src_bytes, 272, -16, 0, 0])
        assert (
            dst.tolist()
            == [1000 + t if 4 * t + 4 <= src_bytes else 0 for t in range(64)] + [-1] * 4
        )
    loc = e.ambiguous_accesses[0].location
    assert loc.startswith("kernels.py:")
    one = [AmbiguousAccess(LOAD, loc, (0, 0, 0), t, 4 * t, 4 * t + 2**32) for t in lanes]
    assert e.ambiguous_accesses == one + one


# ---- the overflow report: unsigned offset wraps apart from signed overflow ----------------


def test_unsigned_offset_wrap_reported_apart_from_signed_overflow(dumps, arch):
    src, dst = src_dst()
    e = emu(dumps, arch, "buf_soffset", check_overflow=True)
    # vbias -16 (0xFFFFFFF0): 4t + 0xFFFFFFF0 >= 2^32 for t >= 4 (60 lanes), then + 16 wraps
    # for t <= 3 (4 lanes): both adds are on one source line -> one line of 64 lanes, first
    # lane t = 4 with exact value 16 + 0xFFFFFFF0 = 2^32. As signed values, 4t - 16 and
    # (4t - 16) + 16 never overflow.
    e.launch("buf_soffset_0", [src, dst, 256, 272, -16, 0, 0])
    (wrap,) = e.overflow_report
    assert (wrap.kind, wrap.op, wrap.lanes, wrap.lane, wrap.value) == (
        "unsigned-wrap",
        "llvm.add",
        64,
        4,
        2**32,
    )
    assert wrap.workgroup == (0, 0, 0) and wrap.location.startswith("kernels.py:")
    assert e.overflows == {f"{wrap.location} llvm.add [unsigned-wrap]": 64}


def test_signed_overflow_without_unsigned_wrap(dumps, arch):
    src, dst = src_dst()
    e = emu(dumps, arch, "buf_soffset", check_overflow=True)
    # vbias 2^31 - 8: 4t + 2^31 - 8 > 2^31 - 1 for t >= 2 (62 lanes), + 16 overflows for t <= 1
    # (2 lanes): 64 lanes, first t = 2 with value 2^31. Unsigned, 4t + 0x7FFFFFF8 + 16 < 2^32.
    e.launch("buf_soffset_0", [src, dst, 256, 272, 2**31 - 8, 0, 0])
    (ovf,) = e.overflow_report
    assert (ovf.kind, ovf.op, ovf.lanes, ovf.lane, ovf.value) == (
        "signed-overflow",
        "llvm.add",
        64,
        2,
        2**31,
    )


# ---- V# flags -------------------------------------------------------------------------------


def test_flydsl_rsrc_flags_accepted(dumps, arch):
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    emu(dumps, arch, "rsrc_flags").launch("rsrc_flags_0", [src, dst, 0x27000])
    assert dst.tolist() == list(range(1000, 1064))


@pytest.mark.parametrize(
    "flags", [0x27000 | 1 << 23, 0, 0x27000 | 3 << 28], ids=["add_tid", "zero", "rdna_oob_select"]
)
def test_other_rsrc_flags_rejected(dumps, arch, flags):
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    with pytest.raises(EmulatorError) as err:
        emu(dumps, arch, "rsrc_flags").launch("rsrc_flags_0", [src, dst, flags])
    msg = str(err.value)
    assert "rocdl.make.buffer.rsrc @ kernels.py:" in msg and f"0x{flags:x} " in msg
    assert f"on {arch}; accepted: 0x27000 " in msg
    assert (dst == -1).all()


# ---- s_buffer_load out of range ---------------------------------------------------------------


@pytest.mark.parametrize(
    "src_bytes, offset, value",
    [
        (8, 4, 1001),  # dword at 4: 4 + 4 <= 8
        (8, 6, 1001),  # bits [1:0] ignored: the dword at 4
        (8, 8, 0),  # 8 + 4 > 8: out of range, reads 0
        (-1, 0xFFFFFFFC, 0),  # 0xFFFFFFFC + 4 = 2^32 > num_records 0xFFFFFFFF: 0, no access
    ],
)
def test_s_buffer_load_range(dumps, arch, src_bytes, offset, value):
    src, dst = torch.arange(1000, 1064, dtype=torch.int32), torch.full((64,), -1, dtype=torch.int32)
    emu(dumps, arch, "s_load").launch("s_load_0", [src, dst, src_bytes, offset])
    assert (dst == value).all()


# ---- fp8 out of range: NaN (rocdl.cvt.pk.fp8.f32 cannot set the saturating clamp) ------------


def test_fp8_out_of_range_converts_to_nan(dumps, arch):
    x = torch.ones(64)
    x[0], x[1], x[2], x[3], x[4] = 240.0, 248.0, 464.0, 464.5, math.inf
    half, words, m = (
        torch.zeros(128, dtype=torch.int16),
        torch.zeros(64, dtype=torch.int32),
        torch.zeros(640),
    )
    emu(dumps, arch, "convert").launch("convert_0", [x, half, words, m])
    # Words[t] = code(x) | code(-x) << 8
    if arch == "gfx942":  # fnuz: max 240 = 0x7F; 248 ties up to 256 -> NaN 0x80, any sign
        expected = [0xFF7F, 0x8080, 0x8080, 0x8080, 0x8080]
    else:  # fn: 240 = 0x77; 248 ties to 256 = 0x78; 464 ties down to 448 = 0x7E; above: 0x7F|sign
        expected = [0xF777, 0xF878, 0xFE7E, 0xFF7F, 0xFF7F]
    assert [w & 0xFFFF for w in words[:5].tolist()] == expected
    back = m.view(10, 64)[8]  # float(fp8 byte 0)
    assert back[0].item() == 240.0 and back[1].isnan() == (arch == "gfx942")
    assert back[3].isnan() and back[4].isnan()


# ---- f32 buffer atomic add flushes denormals (inputs and result) ---------------------------


def test_f32_buffer_atomic_add_flushes_denormals(dumps, arch):
    tiny, n = 2.0**-130, 2.0**-126  # a denormal; the smallest normal
    acc, vals = torch.zeros(64), torch.zeros(64)
    acc[:5] = torch.tensor([0.0, tiny, 1.5 * n, n, 1.0])
    vals[:5] = torch.tensor([tiny, 0.0, -n, n / 2, 2.0])
    old = torch.full((64,), -1.0)
    emu(dumps, arch, "atomics_f32_lanes").launch("atomics_f32_lanes_0", [acc, vals, old])
    # 0 + tiny: the lane's denormal input is flushed -> 0; tiny + 0: the memory's -> 0;
    # 1.5n - n = n/2 is a denormal result -> 0; n + n/2: n/2 is flushed -> n; 1 + 2 = 3
    assert acc[:5].tolist() == [0.0, 0.0, 0.0, n, 3.0] and (acc[5:] == 0).all()
    assert old[:5].tolist() == [0.0, tiny, 1.5 * n, n, 1.0]  # the old value as it was stored
