"""Small hand-written FlyDSL kernels that pin down the emulator's semantics.

Each kernel exercises one hardware rule; tests/emulator/test_semantics.py derives the expected
results by hand from the AMD ISA documents. Every `@flyc.jit` launcher here is compiled with
COMPILE_ONLY + FLYDSL_DUMP_IR by `compile_dumps.py` (one subprocess per arch).
Kernels use raw ROCDL/LLVM ops on purpose, so that the IR is exactly the instruction under test.
"""

import flydsl.compiler as flyc
import flydsl.expr as fx
from flydsl._mlir import ir
from flydsl._mlir.dialects import llvm
from flydsl._mlir.dialects import rocdl as rocdl_ops
from flydsl.expr import rocdl

WAVE = 64
WG = 256  # 4 waves per workgroup
I32 = lambda: ir.IntegerType.get_signless(32)  # noqa: E731
I8 = lambda: ir.IntegerType.get_signless(8)  # noqa: E731
F32 = lambda: ir.F32Type.get()  # noqa: E731


def _v(x):
    """DSL value or int -> ir.Value (ints become i32 constants)."""
    if isinstance(x, int):
        return fx.Int32(x).ir_value()
    return x.ir_value() if hasattr(x, "ir_value") else x


def _vec(n, elem):
    return ir.VectorType.get([n], elem)


def _rsrc(tensor, num_records=None):
    """Raw buffer resource over `tensor` (num_records bytes, default 0xFFFFFFFF)."""
    ptr = fx.get_iter(tensor)
    return rocdl.get_buffer_rsrc(rocdl.make_buffer_ptr(ptr, num_records_bytes=num_records))


def _load(res_type, rsrc, voffset, soffset=0):
    return rocdl.raw_ptr_buffer_load(res_type, rsrc, _v(voffset), _v(soffset), 0)


def _store(value, rsrc, voffset, soffset=0):
    rocdl.raw_ptr_buffer_store(_v(value), rsrc, _v(voffset), _v(soffset))


def _tid():
    return fx.Int32(fx.thread_idx.x)


def _lds_base(nbytes):
    """!llvm.ptr<3> to a static LDS allocation of `nbytes` bytes."""
    return fx.to_llvm_ptr(fx.SharedAllocator().allocate(nbytes)._ptr)


def _global_gep(tensor, byte_offset):
    base = fx.to_llvm_ptr(fx.get_iter(tensor))
    return llvm.getelementptr(base.type, base, [_v(byte_offset)], [-2147483648], I8(), 0)


def _lds_gep(base, byte_offset):
    return llvm.getelementptr(base.type, base, [_v(byte_offset)], [-2147483648], I8(), 0)


# ---- buffer addressing -------------------------------------------------------------------


@flyc.kernel
def buf_copy(
    Src: fx.Tensor,
    Dst: fx.Tensor,
    src_bytes: fx.Int32,
    dst_bytes: fx.Int32,
    vbias: fx.Int32,
):
    """Dst[tid] = Src.load(voffset = 4*tid + vbias) with explicit num_records on both V#s."""
    tid = _tid()
    src = _rsrc(Src, fx.Int64(fx.Uint32(src_bytes)))
    dst = _rsrc(Dst, fx.Int64(fx.Uint32(dst_bytes)))
    v = _load(I32(), src, tid * 4 + vbias)
    _store(v, dst, tid * 4)


@flyc.jit
def launch_buf_copy(
    Src: fx.Tensor,
    Dst: fx.Tensor,
    src_bytes: fx.Int32,
    dst_bytes: fx.Int32,
    vbias: fx.Int32,
    stream: fx.Stream = fx.Stream(None),
):
    buf_copy(Src, Dst, src_bytes, dst_bytes, vbias).launch(
        grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream
    )


@flyc.kernel
def buf_soffset(
    Src: fx.Tensor,
    Dst: fx.Tensor,
    src_bytes: fx.Int32,
    dst_bytes: fx.Int32,
    vbias: fx.Int32,
    s_load: fx.Int32,
    s_store: fx.Int32,
):
    """v = Src.load(voffset = (4*tid + vbias) + 16, soffset = s_load); Dst.store(v, voffset =
    4*tid, soffset = s_store); explicit num_records on both V#s. The trailing constant 16 is
    what the backend may fold into the load's instruction offset field."""
    tid = _tid()
    src = _rsrc(Src, fx.Int64(fx.Uint32(src_bytes)))
    dst = _rsrc(Dst, fx.Int64(fx.Uint32(dst_bytes)))
    v = _load(I32(), src, tid * 4 + vbias + 16, s_load)
    _store(v, dst, tid * 4, s_store)


@flyc.jit
def launch_buf_soffset(
    Src: fx.Tensor,
    Dst: fx.Tensor,
    src_bytes: fx.Int32,
    dst_bytes: fx.Int32,
    vbias: fx.Int32,
    s_load: fx.Int32,
    s_store: fx.Int32,
    stream: fx.Stream = fx.Stream(None),
):
    buf_soffset(Src, Dst, src_bytes, dst_bytes, vbias, s_load, s_store).launch(
        grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream
    )


@flyc.kernel
def rsrc_flags(Src: fx.Tensor, Dst: fx.Tensor, flags: fx.Int32):
    """Dst[tid] = Src[tid], loaded through a V# built with the raw ROCDL op and the given
    flags word (dword 3)."""
    base = fx.to_llvm_ptr(fx.get_iter(Src))
    rsrc = rocdl_ops.make_buffer_rsrc(
        ir.Type.parse("!llvm.ptr<8>"),
        base,
        fx.Int16(0).ir_value(),
        fx.Int64(0xFFFFFFFF).ir_value(),
        _v(flags),
    )
    _store(_load(I32(), rsrc, _tid() * 4), _rsrc(Dst), _tid() * 4)


@flyc.jit
def launch_rsrc_flags(
    Src: fx.Tensor, Dst: fx.Tensor, flags: fx.Int32, stream: fx.Stream = fx.Stream(None)
):
    rsrc_flags(Src, Dst, flags).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


@flyc.kernel
def s_load(Src: fx.Tensor, Dst: fx.Tensor, src_bytes: fx.Int32, byte_offset: fx.Int32):
    """Every lane stores the wave-uniform SMEM load s_buffer_load_dword(Src, byte_offset),
    Src's V# having num_records = src_bytes."""
    src = _rsrc(Src, fx.Int64(fx.Uint32(src_bytes)))
    i128 = ir.IntegerType.get_signless(128)
    words = llvm.bitcast(_vec(4, I32()), llvm.ptrtoint(i128, src))
    v = llvm.call_intrinsic(
        I32(), "llvm.amdgcn.s.buffer.load.i32", [words, _v(byte_offset), _v(0)], [], []
    )
    _store(v, _rsrc(Dst), _tid() * 4)


@flyc.jit
def launch_s_load(
    Src: fx.Tensor,
    Dst: fx.Tensor,
    src_bytes: fx.Int32,
    byte_offset: fx.Int32,
    stream: fx.Stream = fx.Stream(None),
):
    s_load(Src, Dst, src_bytes, byte_offset).launch(
        grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream
    )


# ---- divergence ----------------------------------------------------------------------------


@flyc.kernel
def diverge(Out: fx.Tensor):
    """Per-lane trip count tid % 5 with an if/else on the lane parity inside the loop:
    odd lanes add 10*i, even lanes add 1; Out[tid] = acc."""
    tid = _tid()
    acc = fx.Int32(0)
    for i in range(tid % 5):
        if tid % 2 == 1:
            acc = acc + i * 10
        else:
            acc = acc + 1
    _store(acc, _rsrc(Out), tid * 4)


@flyc.jit
def launch_diverge(Out: fx.Tensor, stream: fx.Stream = fx.Stream(None)):
    diverge(Out).launch(grid=(1, 1, 1), block=(WG, 1, 1), stream=stream)


# ---- atomics -------------------------------------------------------------------------------


@flyc.kernel
def atomics_f32(Acc: fx.Tensor, Old: fx.Tensor):
    """Every lane adds 1.5 to Acc[tid % 4]: buffer atomic fadd (Acc[0..3]) and global
    atomicrmw fadd (Acc[4..7]); the buffer atomic's returned old value goes to Old[tid].
    """
    tid = _tid()
    slot = (tid % 4) * 4
    old = rocdl.raw_ptr_buffer_atomic_fadd(fx.Float32(1.5), _rsrc(Acc), _v(slot), _v(0))
    _store(old, _rsrc(Old), (fx.Int32(fx.block_idx.x) * WG + tid) * 4)
    llvm.atomicrmw(
        llvm.AtomicBinOp.fadd,
        _global_gep(Acc, slot + 16),
        _v(fx.Float32(1.5)),
        llvm.AtomicOrdering.monotonic,
        syncscope="agent",
    )


@flyc.kernel
def atomics_pk(Acc: fx.Tensor, Lanes: fx.Tensor, elem: fx.Constexpr[str]):
    """Lane tid adds the packed pair Lanes[tid] (2 x bf16 or f16) to dword Acc[tid % 2]."""
    tid = _tid()
    ety = ir.BF16Type.get() if elem == "bf16" else ir.F16Type.get()
    pair = _load(_vec(2, ety), _rsrc(Lanes), tid * 4)
    rocdl.raw_ptr_buffer_atomic_fadd(pair, _rsrc(Acc), _v((tid % 2) * 4), _v(0))


@flyc.kernel
def atomics_cmpswap(Acc: fx.Tensor, Old: fx.Tensor):
    """Every lane tries cmpswap(Acc[0]: 0 -> tid + 1); Old[tid] = the value it saw."""
    tid = _tid()
    old = rocdl.raw_ptr_buffer_atomic_cmpswap(I32(), _v(tid + 1), _v(0), _rsrc(Acc), _v(0), _v(0))
    _store(old, _rsrc(Old), tid * 4)


@flyc.kernel
def atomics_f32_lanes(Acc: fx.Tensor, Vals: fx.Tensor, Old: fx.Tensor):
    """Lane tid: buffer atomic fadd of Vals[tid] (f32) to Acc[tid]; Old[tid] = the old value."""
    tid = _tid()
    v = _load(F32(), _rsrc(Vals), tid * 4)
    old = rocdl.raw_ptr_buffer_atomic_fadd(v, _rsrc(Acc), _v(tid * 4), _v(0))
    _store(old, _rsrc(Old), tid * 4)


@flyc.jit
def launch_atomics_f32_lanes(
    Acc: fx.Tensor, Vals: fx.Tensor, Old: fx.Tensor, stream: fx.Stream = fx.Stream(None)
):
    atomics_f32_lanes(Acc, Vals, Old).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


@flyc.jit
def launch_atomics(
    Acc: fx.Tensor,
    Other: fx.Tensor,
    variant: fx.Constexpr[str],
    stream: fx.Stream = fx.Stream(None),
):
    if variant == "f32":
        atomics_f32(Acc, Other).launch(grid=(2, 1, 1), block=(WG, 1, 1), stream=stream)

    elif variant == "cmpswap":
        atomics_cmpswap(Acc, Other).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)
    else:
        atomics_pk(Acc, Other, variant).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


# ---- MFMA ----------------------------------------------------------------------------------

# name -> (rocdl builder, A/B element type, elements per lane, accumulator type, acc elements)
MFMA_SHAPES = {
    "16x16x16_bf16": ("mfma_f32_16x16x16bf16_1k", "i16", 4, "f32", 4),
    "16x16x16_f16": ("mfma_f32_16x16x16f16", "f16", 4, "f32", 4),
    "16x16x32_bf16": ("mfma_f32_16x16x32_bf16", "bf16", 8, "f32", 4),
    "16x16x32_f16": ("mfma_f32_16x16x32_f16", "f16", 8, "f32", 4),
    "32x32x8_bf16": ("mfma_f32_32x32x8bf16_1k", "i16", 4, "f32", 16),
    "16x16x32_fp8": ("mfma_f32_16x16x32_fp8_fp8", "i64", 1, "f32", 4),
    "16x16x32_i8": ("mfma_i32_16x16x32_i8", "i64", 1, "i32", 4),
}


def _ir_type(name):
    return {
        "i16": lambda: ir.IntegerType.get_signless(16),
        "i64": lambda: ir.IntegerType.get_signless(64),
        "i32": I32,
        "f16": ir.F16Type.get,
        "bf16": ir.BF16Type.get,
        "f32": F32,
    }[name]()


@flyc.kernel
def mfma(A: fx.Tensor, B: fx.Tensor, C: fx.Tensor, D: fx.Tensor, shape: fx.Constexpr[str]):
    """One MFMA per wave on raw per-lane registers: lane l's A operand is the l-th 8/16-byte
    chunk of A (same for B), its accumulator the l-th 16/64-byte chunk of C; D[l] = the result.
    """
    builder, ab, width, acc, acc_n = MFMA_SHAPES[shape]
    lane = _tid()
    ab_ty = _ir_type(ab) if width == 1 else _vec(width, _ir_type(ab))
    ab_bytes = 8 if ab == "i64" else 2 * width
    acc_ty = _vec(acc_n, _ir_type(acc))
    a = _load(ab_ty, _rsrc(A), lane * ab_bytes)
    b = _load(ab_ty, _rsrc(B), lane * ab_bytes)
    c = llvm.load(acc_ty, _global_gep(C, lane * 4 * acc_n))  # global (flat) load / store:
    d = getattr(rocdl, builder)(acc_ty, [a, b, c])  # a 64-byte buffer access does not select
    llvm.store(d, _global_gep(D, lane * 4 * acc_n))


@flyc.jit
def launch_mfma(
    A: fx.Tensor,
    B: fx.Tensor,
    C: fx.Tensor,
    D: fx.Tensor,
    shape: fx.Constexpr[str],
    stream: fx.Stream = fx.Stream(None),
):
    mfma(A, B, C, D, shape).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


# ---- conversions and math ------------------------------------------------------------------


@flyc.kernel
def convert(X: fx.Tensor, Half: fx.Tensor, Words: fx.Tensor, Math: fx.Tensor):
    """Per lane x = X[tid]:
    Half[0, tid] = bf16(x) (fptrunc), Half[1, tid] = f16(x);
    Words[tid] = cvt_pk_fp8_f32(x, -x) (2 fp8 bytes in the low word half);
    Math[k, tid] for k = exp2, rcp, log2, rsq, fma(x, x, 1), maxnum(x, 0.5), float(bf16(x)),
    float(f16(x)), float(fp8 byte 0), float(fp8 byte 1)."""
    tid = _tid()
    f32 = F32()
    x = _load(f32, _rsrc(X), tid * 4)
    bf = llvm.fptrunc(ir.BF16Type.get(), x)
    hf = llvm.fptrunc(ir.F16Type.get(), x)
    half = _rsrc(Half)
    _store(bf, half, tid * 2)
    _store(hf, half, tid * 2 + 2 * WAVE)
    neg = llvm.fneg(x)
    pk = rocdl.cvt_pk_fp8_f32(I32(), x, neg, _v(0), False)
    _store(pk, _rsrc(Words), tid * 4)
    results = [
        rocdl.exp2(f32, x),
        rocdl.rcp(f32, x),
        rocdl.log(f32, x),
        rocdl.rsq(f32, x),
        llvm.intr_fma(x, x, _v(fx.Float32(1.0))),
        llvm.intr_maxnum(x, _v(fx.Float32(0.5))),
        llvm.fpext(f32, bf),
        llvm.fpext(f32, hf),
        rocdl.cvt_f32_fp8(f32, pk, 0),
        rocdl.cvt_f32_fp8(f32, pk, 1),
    ]
    math = _rsrc(Math)
    for k, r in enumerate(results):
        _store(r, math, tid * 4 + k * 4 * WAVE)


@flyc.jit
def launch_convert(
    X: fx.Tensor,
    Half: fx.Tensor,
    Words: fx.Tensor,
    Math: fx.Tensor,
    stream: fx.Stream = fx.Stream(None),
):
    convert(X, Half, Words, Math).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


# ---- int4 dequantization (the W4A16 kernels' building block) --------------------------------


@flyc.kernel
def int4_dequant(W: fx.Tensor, S: fx.Tensor, Out: fx.Tensor):
    """Lane l: W[4l:4l+4] (16 bytes = 32 packed int4 values, as one 16 B weight load) and its
    bf16 scale S[l] -> Out[32l:32l+32] = 32 bf16 values, through the very helpers the
    generated int4 kernels call (moegen.backends.flydsl.device.load_group_scale and
    dequant_int4: shifts, arithmetic shift right, sitofp, fmul, fptrunc to bf16)."""
    from moegen.backends.flydsl.device import dequant_int4, load_group_scale

    tid = _tid()
    raw = _load(_vec(4, I32()), _rsrc(W), tid * 16)
    scale = load_group_scale(_rsrc(S), tid)
    out = _rsrc(Out)
    for d in fx.range_constexpr(4):  # a constant dword index (a plain range is a device loop)
        _store(dequant_int4(raw, d, scale), out, tid * 64 + d * 16)


@flyc.jit
def launch_int4_dequant(
    W: fx.Tensor, S: fx.Tensor, Out: fx.Tensor, stream: fx.Stream = fx.Stream(None)
):
    int4_dequant(W, S, Out).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


@flyc.kernel
def int4_unpack_i8(W: fx.Tensor, Out: fx.Tensor):
    """Lane l: W[2l:2l+2] (8 bytes = 16 "split_nibbles" int4 values, as one W4A8 weight load)
    -> Out[4l:4l+4] = the 16 int8 values, through the very helper the generated W4A8 kernels
    call (moegen.backends.flydsl.device.unpack_int4_i8: and, or, mul, logical shift right,
    shufflevector)."""
    from moegen.backends.flydsl.device import unpack_int4_i8

    tid = _tid()
    raw = _load(_vec(2, I32()), _rsrc(W), tid * 8)
    _store(unpack_int4_i8(raw), _rsrc(Out), tid * 16)


@flyc.jit
def launch_int4_unpack_i8(W: fx.Tensor, Out: fx.Tensor, stream: fx.Stream = fx.Stream(None)):
    int4_unpack_i8(W, Out).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


# ---- cross-lane ops ------------------------------------------------------------------------


@flyc.kernel
def cross_lane(Out: fx.Tensor):
    """Rows of Out (64 x i32 each), x = 3*lane + 7:
    0 readfirstlane(x), 1 readlane(x, 5), 2-3 ballot(lane % 3 == 0) as (lo, hi) words in
    lane-major pairs, 4 mbcnt_hi(~0, mbcnt_lo(~0, 0)), 5 ds_bpermute(4*(63 - lane), 10*lane).
    """
    lane = _tid()
    x = _v(lane * 3 + 7)
    out = _rsrc(Out)
    _store(rocdl.readfirstlane(I32(), x), out, lane * 4)
    _store(rocdl.readlane(I32(), x, 5), out, lane * 4 + 256)
    i64 = ir.IntegerType.get_signless(64)
    ballot = rocdl.ballot(i64, _v(lane % 3 == 0))
    _store(llvm.bitcast(_vec(2, I32()), ballot), out, lane * 8 + 512)
    ones = _v(-1)
    _store(
        rocdl.mbcnt_hi(I32(), ones, rocdl.mbcnt_lo(I32(), ones, _v(0))),
        out,
        lane * 4 + 1024,
    )
    _store(
        rocdl.ds_bpermute(I32(), _v((63 - lane) * 4), _v(lane * 10)),
        out,
        lane * 4 + 1280,
    )


@flyc.kernel
def ballot_partial(Out: fx.Tensor):
    """A ballot inside `if lane < 10`: a cross-lane op under a partial EXEC mask."""
    lane = _tid()
    if lane < 10:
        ballot = rocdl.ballot(ir.IntegerType.get_signless(64), _v(lane % 3 == 0))
        _store(llvm.bitcast(_vec(2, I32()), ballot), _rsrc(Out), lane * 8)


@flyc.kernel
def unknown_ops(Out: fx.Tensor):
    """Uses two ops the emulator does not model (ds_swizzle, update_dpp)."""
    lane = _v(_tid())
    a = rocdl.ds_swizzle(I32(), lane, _v(0x1F))
    b = rocdl.update_dpp(I32(), a, a, 0x4E, 0xF, 0xF, False)
    _store(b, _rsrc(Out), _tid() * 4)


@flyc.jit
def launch_cross_lane(
    Out: fx.Tensor, variant: fx.Constexpr[str], stream: fx.Stream = fx.Stream(None)
):
    kernel = {"ok": cross_lane, "partial": ballot_partial, "unknown": unknown_ops}[variant]
    kernel(Out).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)


# ---- a small GEMM (throughput measurement) -------------------------------------------------


@flyc.kernel
def gemm(
    X: fx.Tensor,
    W: fx.Tensor,
    Out: fx.Tensor,
    N: fx.Constexpr[int],
    K: fx.Constexpr[int],
    kstep: fx.Constexpr[int],
):
    """Out[M, N] (f32) = X[M, K] @ W[N, K]^T, bf16. A workgroup of 4 waves owns 16 x 64 of Out;
    each wave one 16 x 16 tile, one MFMA per `kstep` (16: 16x16x16, 32: 16x16x32)."""
    tid = _tid()
    wave, lane = tid // WAVE, tid % WAVE
    row, quad = lane % 16, lane // 16
    width = kstep // 4  # A/B elements per lane
    t = fx.Int32(fx.block_idx.x) * 16 + row
    n = fx.Int32(fx.block_idx.y) * 64 + wave * 16 + row
    x_rsrc, w_rsrc = _rsrc(X), _rsrc(W)
    x_off = (t * K + quad * width) * 2
    w_off = (n * K + quad * width) * 2
    ab_elem = ir.IntegerType.get_signless(16) if kstep == 16 else ir.BF16Type.get()
    ab_ty = _vec(width, ab_elem)
    op = rocdl.mfma_f32_16x16x16bf16_1k if kstep == 16 else rocdl.mfma_f32_16x16x32_bf16
    acc = fx.full((4,), 0.0, fx.Float32)
    for kb in range(fx.Int32(K // kstep)):
        a = _load(ab_ty, x_rsrc, x_off + kb * (2 * kstep))
        b = _load(ab_ty, w_rsrc, w_off + kb * (2 * kstep))
        acc = op(_vec(4, F32()), [a, b, acc])
    accv = fx.Vector(acc, (4,), fx.Float32)
    out = _rsrc(Out)
    for i in fx.range_constexpr(4):
        _store(accv[i], out, ((fx.Int32(fx.block_idx.x) * 16 + quad * 4 + i) * N + n) * 4)


@flyc.jit
def launch_gemm(
    X: fx.Tensor,
    W: fx.Tensor,
    Out: fx.Tensor,
    M: fx.Constexpr[int],
    N: fx.Constexpr[int],
    K: fx.Constexpr[int],
    kstep: fx.Constexpr[int],
    stream: fx.Stream = fx.Stream(None),
):
    gemm(X, W, Out, N, K, kstep).launch(grid=(M // 16, N // 64, 1), block=(WG, 1, 1), stream=stream)


# ---- MFMA operand slicing (moegen.backends.flydsl.device.operand_slices) --------------------


@flyc.kernel
def operand_split(In: fx.Tensor, Out: fx.Tensor):
    """Each lane loads 16 bytes of In at 16 * lane and splits them with the kernels' own
    operand_slices: for fp8's MFMA (i64 operands, one per 8 bytes) the two i64 go to Out at
    16 * lane and 16 * lane + 8; for gfx942 bf16's (vector<4xi16>, one per 8 bytes) each is
    bitcast back to two dwords and stored at 1024 + 16 * lane (+ 8). Out == In bytewise twice
    iff both splits keep the byte order (the i64 of bytes [8p, 8p + 8) of the load)."""
    from moegen.backends.flydsl.device import load_dwords, operand_slices
    from moegen.core.vocabulary import Mfma

    lane = _tid()
    raw = load_dwords(_rsrc(In), _v(lane * 16), 4)
    out = _rsrc(Out)
    fp8 = Mfma(None, 32, "i64", 1)
    for p, op in enumerate(operand_slices(raw, fp8, 8)):
        _store(op, out, lane * 16 + 8 * p)
    bf16 = Mfma(None, 16, "i16", 4)
    for p, op in enumerate(operand_slices(raw, bf16, 16)):
        _store(llvm.bitcast(_vec(2, I32()), op), out, lane * 16 + 8 * p + 1024)


@flyc.jit
def launch_operand_split(In: fx.Tensor, Out: fx.Tensor, stream: fx.Stream = fx.Stream(None)):
    operand_split(In, Out).launch(grid=(1, 1, 1), block=(WAVE, 1, 1), stream=stream)
