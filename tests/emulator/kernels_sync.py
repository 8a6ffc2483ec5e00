"""Test kernels for LDS and synchronization (test_semantics.py, test_sync.py): an LDS exchange
between waves with gpu.barrier, a bare s_barrier or none; explicit llvm.fence scopes
around an LDS exchange, a double-buffered LDS K-tile pipeline in the shape of the fast MoE
kernels (16 B/lane buffer loads, non-temporal, prefetch of tile k+1 before the work on tile k,
ds_write_b128 / ds_read_b128, gpu.barrier), and grid arithmetic done in the host launcher.
Compiled by compile_dumps.py like kernels.py.
"""

import flydsl.compiler as flyc
import flydsl.expr as fx
from flydsl._mlir.dialects import llvm
from flydsl.expr import rocdl

from kernels import I32, WAVE, WG, _lds_base, _lds_gep, _rsrc, _store, _tid, _v, _vec

# ---- LDS -----------------------------------------------------------------------------------


def _lds_reverse_body(Out, lds, barrier, lds_off):
    """barrier: "gpu" (fx.barrier: workgroup release fence, s_barrier, acquire fence), "raw"
    (a bare rocdl.s_barrier, no fences) or None."""
    tid = _tid()
    llvm.store(_v(tid + fx.Int32(fx.block_idx.x) * 1000), _lds_gep(lds, tid * 4 + lds_off))
    if barrier == "gpu":
        fx.barrier()
    elif barrier == "raw":
        rocdl.s_barrier()
    v = llvm.load(I32(), _lds_gep(lds, (WG - 1 - tid) * 4))
    _store(v, _rsrc(Out), (fx.Int32(fx.block_idx.x) * WG + tid) * 4)


@flyc.kernel
def lds_reverse(Out: fx.Tensor, lds_off: fx.Int32):
    """LDS[4*tid + lds_off] = tid + 1000*wg; gpu.barrier; Out[wg, tid] = LDS[4*(255 - tid)]."""
    _lds_reverse_body(Out, _lds_base(WG * 4), "gpu", lds_off)


@flyc.kernel
def lds_reverse_nobarrier(Out: fx.Tensor, lds_off: fx.Int32):
    """Same as lds_reverse without the barrier: a cross-wave LDS race."""
    _lds_reverse_body(Out, _lds_base(WG * 4), None, lds_off)


@flyc.kernel
def lds_reverse_raw_barrier(Out: fx.Tensor, lds_off: fx.Int32):
    """Same as lds_reverse with a bare s_barrier and no fences: on gfx942/gfx950 nothing waits
    for the LDS store before the barrier, so this races too."""
    _lds_reverse_body(Out, _lds_base(WG * 4), "raw", lds_off)


@flyc.kernel
def lds_reverse_dynamic(Out: fx.Tensor, lds_off: fx.Int32):
    """lds_reverse through dynamic shared memory (size given by the launch)."""
    alloc = fx.SharedAllocator(static=False)
    base = fx.to_llvm_ptr(alloc.base_ptr)
    alloc.allocate(WG * 4)
    _lds_reverse_body(Out, base, "gpu", lds_off)


@flyc.jit
def launch_lds(
    Out: fx.Tensor,
    lds_off: fx.Int32,
    variant: fx.Constexpr[str],
    stream: fx.Stream = fx.Stream(None),
):
    kernel = {
        "static": lds_reverse,
        "race": lds_reverse_nobarrier,
        "raw_barrier": lds_reverse_raw_barrier,
        "dynamic": lds_reverse_dynamic,
    }[variant]
    kernel(Out, lds_off).launch(grid=(2, 1, 1), block=(WG, 1, 1), stream=stream)


# ---- explicit fences around an LDS exchange ------------------------------------------------

ORDER = {"acquire": llvm.AtomicOrdering.acquire, "release": llvm.AtomicOrdering.release}
ORDER["acq_rel"] = llvm.AtomicOrdering.acq_rel
FENCE_VARIANTS = {
    # name: (syncscope or None for system, fence before the barrier, fence after it)
    "agent": ("agent", "release", "acquire"),
    "system": (None, "release", "acquire"),
    "acq_rel": ("workgroup", "acq_rel", "acq_rel"),
    "wavefront": ("wavefront", "release", "acquire"),
    "release_after_barrier": ("workgroup", None, "acq_rel"),
    "one_as": ("workgroup-one-as", "release", "acquire"),
}


def _fence(order, scope):
    if order:
        llvm.fence(ORDER[order], syncscope=scope)


@flyc.kernel
def lds_fenced(Out: fx.Tensor, variant: fx.Constexpr[str]):
    """LDS[4*tid] = tid; <fence>; s_barrier; <fence>; Out[tid] = LDS[4*(255 - tid)], with the
    fences of FENCE_VARIANTS[variant]."""
    scope, before, after = FENCE_VARIANTS[variant]
    tid = _tid()
    lds = _lds_base(WG * 4)
    llvm.store(_v(tid), _lds_gep(lds, tid * 4))
    _fence(before, scope)
    rocdl.s_barrier()
    _fence(after, scope)
    v = llvm.load(I32(), _lds_gep(lds, (WG - 1 - tid) * 4))
    _store(v, _rsrc(Out), tid * 4)


@flyc.jit
def launch_lds_fenced(
    Out: fx.Tensor, variant: fx.Constexpr[str], stream: fx.Stream = fx.Stream(None)
):
    lds_fenced(Out, variant).launch(grid=(1, 1, 1), block=(WG, 1, 1), stream=stream)


# ---- a double-buffered LDS K-tile pipeline -------------------------------------------------

TILE_BYTES = WG * 16  # one K tile: 16 B per thread
NT = 2  # buffer op aux bit 1: nt (non-temporal) on gfx940+ (LLVM IntrinsicsAMDGPU.td)
PIPELINE_VARIANTS = (
    "double",  # correct: double buffer, one barrier per tile
    "double_no_prologue_barrier",  # tile 0 read before other waves' stores are ordered
    "double_no_loop_barrier",  # tile k+1 read before other waves' stores are ordered
    "double_drop_middle",  # planted bug: an odd tile count loses its middle tile
    "single",  # correct: one buffer, barriers after the store and after the reads
    "single_no_trailing_barrier",  # the next tile's store overwrites bytes another wave read
)


def _ds_write(lds, off, value):
    llvm.store(value, _lds_gep(lds, off), alignment=16)


def _ds_read(lds, off):
    return llvm.load(_vec(4, I32()), _lds_gep(lds, off), alignment=16)


@flyc.kernel
def pipeline(X: fx.Tensor, Out: fx.Tensor, ntiles: fx.Int32, variant: fx.Constexpr[str]):
    """X: ntiles tiles of 256 x 16 B (i32). Thread t stages 16 B chunk t of each tile in LDS
    and adds chunk (t + 64) % 256, staged by the next wave, to its accumulator:
    Out[t] = sum_k X[k, (t + 64) % 256] (4 x i32). "double*" variants prefetch tile k+1 from
    global memory (buffer_load_dwordx4 nt) before reading tile k from LDS."""
    tid = _tid()
    x = _rsrc(X)
    lds = _lds_base(2 * TILE_BYTES)
    mine, theirs = tid * 16, ((tid + WAVE) % WG) * 16
    v4 = _vec(4, I32())
    acc = _v(fx.full((4,), 0, fx.Int32))
    if variant.startswith("double"):
        regs = rocdl.raw_ptr_buffer_load(v4, x, _v(mine), _v(0), aux=NT)
        _ds_write(lds, mine, regs)
        if variant != "double_no_prologue_barrier":
            fx.barrier()
        for k in range(ntiles):
            buf = (k % 2) * TILE_BYTES
            nxt = k + 1
            if nxt < ntiles:  # prefetch tile k+1 into registers
                regs = rocdl.raw_ptr_buffer_load(v4, x, _v(nxt * TILE_BYTES + mine), _v(0), aux=NT)
            acc = llvm.add(acc, _ds_read(lds, buf + theirs), llvm.IntegerOverflowFlags(0))
            if nxt < ntiles:
                if variant == "double_drop_middle":
                    if ntiles % 2 == 1 and nxt == ntiles // 2:
                        regs = _v(fx.full((4,), 0, fx.Int32))
                _ds_write(lds, TILE_BYTES - buf + mine, regs)
            if variant != "double_no_loop_barrier":
                fx.barrier()
    else:
        for k in range(ntiles):
            regs = rocdl.raw_ptr_buffer_load(v4, x, _v(k * TILE_BYTES + mine), _v(0), aux=NT)
            _ds_write(lds, mine, regs)
            fx.barrier()
            acc = llvm.add(acc, _ds_read(lds, theirs), llvm.IntegerOverflowFlags(0))
            if variant == "single":
                fx.barrier()
    rocdl.raw_ptr_buffer_store(acc, _rsrc(Out), _v(mine), _v(0))


@flyc.jit
def launch_pipeline(
    X: fx.Tensor,
    Out: fx.Tensor,
    ntiles: fx.Int32,
    variant: fx.Constexpr[str],
    stream: fx.Stream = fx.Stream(None),
):
    pipeline(X, Out, ntiles, variant).launch(grid=(1, 1, 1), block=(WG, 1, 1), stream=stream)


# ---- grid arithmetic in the host launcher --------------------------------------------------


@flyc.kernel
def grid_mark(Out: fx.Tensor):
    """Thread 0 of workgroup (x, y) stores x + 1000*y + 1 at Out[y * 64 + x]."""
    bx, by = fx.Int32(fx.block_idx.x), fx.Int32(fx.block_idx.y)
    if _tid() == 0:
        _store(bx + by * 1000 + 1, _rsrc(Out), (by * 64 + bx) * 4)


def _grid(n, d, signed):
    """(ceil(n / d), 1 + n mod d): unsigned (llvm.udiv / llvm.urem) or signed (Python floor
    division on Int32: llvm.sdiv with a floor correction, llvm.srem)."""
    if not signed:
        n, d = fx.Uint32(n), fx.Uint32(d)
    return (n + d - 1) // d, n % d + 1


@flyc.jit
def launch_grid_div(
    Out: fx.Tensor,
    n: fx.Int32,
    d: fx.Int32,
    signed: fx.Constexpr[bool],
    stream: fx.Stream = fx.Stream(None),
):
    gx, gy = _grid(n, d, signed)
    grid_mark(Out).launch(grid=(gx, gy, 1), block=(WAVE, 1, 1), stream=stream)


@flyc.jit
def launch_grid_shape(Out: fx.Tensor, d: fx.Int32, stream: fx.Stream = fx.Stream(None)):
    """grid = (ceil(Out.shape[0] / (64 d)), 1): a launch dimension from a tensor's runtime shape
    (llvm.extractvalue of the layout struct)."""
    n = fx.size(Out.shape).unpack()
    grid_mark(Out).launch(
        grid=((n + 64 * d - 1) // (64 * d), 1, 1), block=(WAVE, 1, 1), stream=stream
    )
