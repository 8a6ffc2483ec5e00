"""Small FlyDSL grouped-GEMM kernels that exercise moegen's compile check and audit.

    Out[t, n] = sum_k X[t, k] * W[e, n, k]      e = ExpertIds[t // BM]

X [T, K] bf16, W [E, N, K] bf16, ExpertIds [T // BM] int32, Out [T, N] f32. A workgroup
of 4 waves owns a 16 x 64 tile of Out; each wave runs 16x16x16 bf16 MFMAs over K.

The kernels differ only in how they reach expert e's slab of W (the weight is the second
tensor parameter, i.e. global pointer #1):

  per_expert    V# base = W + e*N*K elements in 64-bit math; 32-bit offsets span one expert.
  whole_tensor  V# base = W; e*N*K*2 bytes are folded into the 32-bit per-lane offset.
  rsrc_trap     meant per-expert, but the offset is applied to a *buffer* pointer before
                rocdl.get_buffer_rsrc, which silently drops it: every block reads expert 0.
  i32_widening  per-expert base whose element offset e*N*K is multiplied in i32 and only
                then widened to i64 (wraps once e*N*K >= 2^31).
  tanh_epilog   per-expert, with fx.tanh on the accumulator: FlyDSL 0.5 cannot lower f32
                tanh, prints "error: ..." and emits a kernel whose body is just s_endpgm.

Each `compile_<kind>()` is a zero-argument entry point for moegen.backends.flydsl.compile: it calls the
launcher with CPU tensors, which under COMPILE_ONLY=1 traces and compiles without running.
"""

import flydsl.compiler as flyc
import flydsl.expr as fx
import torch
from flydsl._mlir import ir
from flydsl.expr import rocdl

BM = 16  # token rows per workgroup
BN = 64  # output columns per workgroup (4 waves x 16)
KSTEP = 16  # K per MFMA
BF16_BYTES = 2
F32_BYTES = 4

# Shapes used by the compile entry points (small: compile time, not size, matters here).
T, N, K, E = 32, 64, 64, 4


def _vec(n: int, elem: ir.Type) -> ir.VectorType:
    return ir.VectorType.get([n], elem)


def _rsrc(ptr):
    """Global pointer -> raw buffer resource covering 2^32 - 1 bytes from `ptr`."""
    return rocdl.get_buffer_rsrc(rocdl.make_buffer_ptr(ptr))


def _expert_id(expert_ids, block):
    """Scalar (SMEM) load of this block's expert id: wave-uniform, lands in an SGPR."""
    return rocdl.s_buffer_load(rocdl.make_buffer_ptr(fx.get_iter(expert_ids)), block)


def _gemm_tile(X, w_rsrc, w_lane_off, Out, tanh_epilog=False):
    """Accumulate the wave's 16x16 tile over K and store it; `w_lane_off` is the byte offset
    of this lane's first W element relative to the resource base."""
    tid = fx.thread_idx.x
    wave, lane = tid // 64, tid % 64
    row, quad = lane % 16, lane // 16
    t = fx.block_idx.x * BM + row
    x_rsrc = _rsrc(fx.get_iter(X))
    x_off = (t * K + quad * 4) * BF16_BYTES
    i32 = ir.IntegerType.get_signless(32)
    acc = fx.full((4,), 0.0, fx.Float32)
    for kb in range(fx.Int32(K // KSTEP)):
        step = kb * (KSTEP * BF16_BYTES)
        a = rocdl.raw_ptr_buffer_load(_vec(2, i32), x_rsrc, x_off + step, fx.Int32(0), 0)
        b = rocdl.raw_ptr_buffer_load(_vec(2, i32), w_rsrc, w_lane_off + step, fx.Int32(0), 0)
        acc = rocdl.mfma_f32_16x16x16bf16_1k(
            _vec(4, ir.F32Type.get()), [a.bitcast(fx.Int16), b.bitcast(fx.Int16), acc]
        )
    accv = fx.Vector(acc, (4,), fx.Float32)
    if tanh_epilog:
        accv = fx.tanh(accv)
    o_rsrc = _rsrc(fx.get_iter(Out))
    n = fx.block_idx.y * BN + wave * 16 + row
    for i in fx.range_constexpr(4):
        off = ((fx.block_idx.x * BM + quad * 4 + i) * N + n) * F32_BYTES
        rocdl.raw_ptr_buffer_store(
            accv[i].ir_value(), o_rsrc, fx.Int32(off).ir_value(), fx.Int32(0).ir_value()
        )


def _lane_w_row_off():
    """Byte offset of this lane's W row within one expert's [N, K] slab."""
    tid = fx.thread_idx.x
    n = fx.block_idx.y * BN + (tid // 64) * 16 + (tid % 64) % 16
    return (n * K + ((tid % 64) // 16) * 4) * BF16_BYTES


@flyc.kernel
def gemm_per_expert(X: fx.Tensor, W: fx.Tensor, ExpertIds: fx.Tensor, Out: fx.Tensor):
    e = _expert_id(ExpertIds, fx.block_idx.x)
    w_expert = fx.add_offset(fx.get_iter(W), fx.Int64(e) * fx.Int64(N * K))
    _gemm_tile(X, _rsrc(w_expert), _lane_w_row_off(), Out)


@flyc.kernel
def gemm_whole_tensor(X: fx.Tensor, W: fx.Tensor, ExpertIds: fx.Tensor, Out: fx.Tensor):
    e = _expert_id(ExpertIds, fx.block_idx.x)
    expert_bytes = e * (N * K * BF16_BYTES)
    _gemm_tile(X, _rsrc(fx.get_iter(W)), expert_bytes + _lane_w_row_off(), Out)


@flyc.kernel
def gemm_rsrc_trap(X: fx.Tensor, W: fx.Tensor, ExpertIds: fx.Tensor, Out: fx.Tensor):
    e = _expert_id(ExpertIds, fx.block_idx.x)
    w_buffer = rocdl.make_buffer_ptr(fx.get_iter(W))
    w_expert = fx.add_offset(w_buffer, fx.Int64(e) * fx.Int64(N * K))
    _gemm_tile(X, rocdl.get_buffer_rsrc(w_expert), _lane_w_row_off(), Out)


@flyc.kernel
def gemm_i32_widening(X: fx.Tensor, W: fx.Tensor, ExpertIds: fx.Tensor, Out: fx.Tensor):
    e = _expert_id(ExpertIds, fx.block_idx.x)
    w_expert = fx.add_offset(fx.get_iter(W), fx.Int64(e * (N * K)))
    _gemm_tile(X, _rsrc(w_expert), _lane_w_row_off(), Out)


@flyc.kernel
def gemm_tanh_epilog(X: fx.Tensor, W: fx.Tensor, ExpertIds: fx.Tensor, Out: fx.Tensor):
    e = _expert_id(ExpertIds, fx.block_idx.x)
    w_expert = fx.add_offset(fx.get_iter(W), fx.Int64(e) * fx.Int64(N * K))
    _gemm_tile(X, _rsrc(w_expert), _lane_w_row_off(), Out, tanh_epilog=True)


def _launcher(kernel):
    @flyc.jit
    def launch(
        X: fx.Tensor,
        W: fx.Tensor,
        ExpertIds: fx.Tensor,
        Out: fx.Tensor,
        stream: fx.Stream = fx.Stream(None),
    ):
        kernel(X, W, ExpertIds, Out).launch(
            grid=(T // BM, N // BN, 1), block=(256, 1, 1), stream=stream
        )

    return launch


def _compile(kernel) -> None:
    x = torch.empty(T, K, dtype=torch.bfloat16)
    w = torch.empty(E, N, K, dtype=torch.bfloat16)
    ids = torch.zeros(T // BM, dtype=torch.int32)
    out = torch.empty(T, N, dtype=torch.float32)
    _launcher(kernel)(x, w, ids, out)


def compile_per_expert() -> None:
    _compile(gemm_per_expert)


def compile_whole_tensor() -> None:
    _compile(gemm_whole_tensor)


def compile_rsrc_trap() -> None:
    _compile(gemm_rsrc_trap)


def compile_i32_widening() -> None:
    _compile(gemm_i32_widening)


def compile_tanh_epilog() -> None:
    _compile(gemm_tanh_epilog)
