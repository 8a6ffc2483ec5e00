"""The buffer addressing and range rules, fp8 rounding and the dependency check, on the emulator's
functions directly (no kernel compile: milliseconds). Every expected value is derived by hand in
the comments from the rule in moegen/emulator/memory.py:
    offset   = ((voffset + inst_offset) mod 2^32) + soffset   (no wrap of the soffset add)
    in range = offset + 4j + 4 <= num_records                  (per dword j, soffset included)
"""

import numpy as np
import pytest
import torch

from deps import require
from moegen.emulator import AmbiguousAccess
from moegen.emulator.execution import Batch, Runtime
from moegen.emulator.lds import UNWRITTEN, Lds
from moegen.emulator.memory import (
    Memory,
    ambiguous_lanes,
    buffer_addresses,
    buffer_offsets,
    in_range,
    make_rsrc,
)
from moegen.emulator.numerics import bf16_to_f32, f32_to_fp8
from moegen.emulator.ops import OpInfo
from moegen.emulator.ops.integer import _arith, _shift
from moegen.emulator.ops.memory_ops import _buffer_store, buffer_load
from moegen.emulator.types import parse_type

U32 = np.uint32
I32 = parse_type("i32")
FLAGS = 0x27000  # the V# flags FlyDSL emits on gfx942 / gfx950


def test_voffset_wraps_at_2_32_but_the_soffset_add_does_not():
    # an i32 voffset of -4 is 0xFFFFFFFC; + soffset 8 = 0x1_0000_0004 (no wrap to 4)
    assert buffer_offsets(U32(0xFFFFFFFC), U32(8)) == 0x1_0000_0004
    # soffset near 2^32: 0x10 + 0xFFFFFFF8 = 0x1_0000_0008 (the old rule wrapped it to 8)
    assert buffer_offsets(U32(0x10), U32(0xFFFFFFF8)) == 0x1_0000_0008
    # voffset + soffset crossing 2^32: 0x8000_0000 + 0x8000_0004 = 0x1_0000_0004
    assert buffer_offsets(U32(0x8000_0000), U32(0x8000_0004)) == 0x1_0000_0004


def test_range_check_includes_soffset():
    # num_records 256: 248 + 4 = 252 <= 256 in; soffset 4: 252 + 4 = 256 <= 256 in (the
    # boundary is inclusive); soffset 8: 256 + 4 = 260 > 256 out
    offsets = buffer_offsets(U32(248), np.array([0, 4, 8], U32))
    assert in_range(offsets, 4, 256).tolist() == [True, True, False]
    # any offset >= 2^32 is out of range, even with num_records = 0xFFFFFFFF; so is the last
    # dword below 2^32: 0xFFFFFFFC + 4 = 2^32 > 0xFFFFFFFF
    assert in_range(
        np.array([1 << 32, 0xFFFFFFFC, 0xFFFFFFF8], np.uint64), 4, 0xFFFFFFFF
    ).tolist() == [
        False,
        False,
        True,
    ]


def test_buffer_addresses_per_dword():
    # base 0x1000, dwordx4 at voffset 244 + soffset 4 = 248, num_records 256: dwords at
    # 248, 252 in range (252 + 4 = 256), 256, 260 out; addresses base + 248 + 4j
    r = make_rsrc(0x1000, 0, 256, FLAGS)
    addr, ok, chunk, offsets = buffer_addresses(r, U32(244), U32(4), 16, 1)
    assert chunk == 4 and offsets.tolist() == [248]
    assert addr.tolist() == [[0x10F8, 0x10FC, 0x1100, 0x1104]]
    assert ok.tolist() == [[True, True, False, False]]


def test_ambiguous_lanes_follow_the_folded_addend():
    # voffset = (x + 16) mod 2^32 carried iff voffset < 16
    v = np.array([0, 15, 16, 0xFFFFFFFF], U32)
    assert ambiguous_lanes(v, 16).tolist() == [True, True, False, False]
    assert not ambiguous_lanes(v, 0).any()  # no constant addend: nothing the backend folds
    # addend 5000: at most 4095 fits the MUBUF offset field, so only voffset < 4096 is ambiguous
    assert ambiguous_lanes(np.array([4095, 4096], U32), 5000).tolist() == [True, False]


def _runtime(tensor: torch.Tensor, check_overflow: bool = False) -> Runtime:
    """A runtime with one wave (64 lanes, all active) and `tensor` registered."""
    mem = Memory()
    mem.add_tensor(tensor, "t")
    rt = Runtime("gfx942", mem, check_overflow, False)
    rt.batch = Batch(np.zeros((1, 3), np.uint32), (64, 1, 1), 64, 64, Lds(1, 0, False))
    rt.batch.mask = rt.batch.alive
    return rt


def test_oob_load_returns_zero_and_oob_store_is_dropped():
    t = torch.arange(100, 164, dtype=torch.int32)
    rt = _runtime(t)
    op = OpInfo("rocdl.raw.ptr.buffer.load", "test.py:1", {}, [], [I32])
    r = make_rsrc(t.data_ptr(), 0, 40, FLAGS)  # 40 bytes: dwords 0..9
    lanes = np.arange(64, dtype=U32)
    # voffset 4*lane, soffset 8: lane l reads dword l + 2 while 4l + 8 + 4 <= 40, i.e. l <= 7
    got = buffer_load(rt, op, I32, r, lanes * U32(4), U32(8))
    assert got.tolist() == [102 + lane for lane in range(8)] + [0] * 56
    store = _buffer_store(OpInfo("rocdl.raw.ptr.buffer.store", "test.py:2", {}, [I32], []), rt)
    store(np.full(64, -1, np.int32).view(U32), r, lanes * U32(4), U32(8))
    # the same lanes 0..7 write dwords 2..9; lanes 8.. are out of range and dropped
    assert t.tolist() == [100, 101] + [-1] * 8 + list(range(110, 164))


def test_ambiguous_access_recorded_with_both_readings():
    t = torch.arange(100, 164, dtype=torch.int32)
    rt = _runtime(t)
    op = OpInfo("rocdl.raw.ptr.buffer.load", "test.py:3", {}, [], [I32], folded_addend=16)
    r = make_rsrc(t.data_ptr(), 0, 256, FLAGS)
    # voffset = (4*lane - 16) + 16: lanes 0..3 carried (voffset 4*lane < 16), all in range
    got = buffer_load(rt, op, I32, r, np.arange(64, dtype=U32) * U32(4), U32(0))
    assert got.tolist() == list(range(100, 164))  # the wrapped reading is executed
    assert rt.ambiguous_accesses == [
        AmbiguousAccess(op.name, "test.py:3", (0, 0, 0), lane, 4 * lane, 4 * lane + (1 << 32))
        for lane in range(4)
    ]


LANES = np.arange(64, dtype=U32)


@pytest.mark.parametrize(
    "name, a, b, first_lane, value, lanes",
    [
        # 4l - 8 as unsigned: below 0 for l < 2 -> 2 lanes, first l = 0 with value -8
        ("llvm.sub", LANES * U32(4), 8, 0, -8, 2),
        # (0x3FFF_FFF0 + l) * 4 = 0xFFFF_FFC0 + 4l >= 2^32 for l >= 16 -> 48 lanes, l = 16: 2^32
        ("llvm.mul", U32(0x3FFF_FFF0) + LANES, 4, 16, 1 << 32, 48),
        # (0x3FFF_FFF0 + l) << 2: the same values, bits shifted past bit 31
        ("llvm.shl", U32(0x3FFF_FFF0) + LANES, 2, 16, 1 << 32, 48),
    ],
)
def test_unsigned_wrap_of_an_offset_is_reported(name, a, b, first_lane, value, lanes):
    rt = _runtime(torch.zeros(1), check_overflow=True)
    op = OpInfo(name, "test.py:4", {}, [I32, I32], [I32], computes_buffer_offset=True)
    (_shift if name == "llvm.shl" else _arith)(op, rt)(a, np.full(64, b, U32))
    wraps = [o for o in rt.overflow_report.values() if o.kind == "unsigned-wrap"]
    assert [(o.op, o.lane, o.value, o.lanes) for o in wraps] == [(name, first_lane, value, lanes)]


@pytest.mark.parametrize(
    "fmt, values, codes",
    [
        # fnuz (gfx942): max 240 = 0x7F (odd mantissa); 248 is the tie with the virtual 256
        # (0x80, even) -> NaN (0x80, whatever the sign); 247 -> 240; inf -> NaN
        ("fnuz", [240, 247, 248, -248, 464, np.inf], [0x7F, 0x7F, 0x80, 0x80, 0x80, 0x80]),
        # fn (gfx950): max 448 = 0x7E (even); 464 ties to 448; 464.5 and inf -> NaN 0x7F|sign;
        # 248 ties between 240 (0x77) and 256 (0x78, even) -> 0x78
        ("fn", [248, 464, 464.5, -464.5, np.inf], [0x78, 0x7E, 0x7F, 0xFF, 0x7F]),
    ],
)
def test_fp8_out_of_range_is_nan_not_saturated(fmt, values, codes):
    assert f32_to_fp8(np.array(values, np.float32), fmt).tolist() == codes


def test_missing_hard_dependency_fails_not_skips():
    with pytest.raises(pytest.fail.Exception, match="no_such_module_moegen"):
        require(("no_such_module_moegen",))



def test_lds_starts_unwritten_not_zero():
    """Hardware does not clear LDS for a new workgroup: a read before any write must not look
    like zeros (which a sum would absorb); as bf16 the unwritten bytes are NaN."""
    lds = Lds(2, 8, race_check=True, waves=1)
    wg, wave, active = np.array([0, 1]), np.zeros(2, np.int64), np.ones(2, bool)
    got = lds.read(wg, wave, np.array([0, 4]), 4, active, "read", str)
    assert (got == UNWRITTEN).all()
    assert np.isnan(bf16_to_f32(got.view(np.uint16))).all()
    lds.write(wg, wave, np.array([0, 4]), np.zeros((2, 4), np.uint8), active, "write", str)
    assert (lds.read(wg, wave, np.array([0, 4]), 4, active, "read", str) == 0).all()
