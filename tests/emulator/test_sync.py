"""Fences, barriers and pipelines (kernels_sync.py), and host launcher arithmetic, compiled for
gfx942 and gfx950. Expected values are computed from the kernels' definitions (torch integer
sums, hand-derived grids), never from the emulator. The LDS race check is on in every run."""

import re

import pytest
import torch

from moegen.emulator import Emulator, EmulatorError, ExecError, LdsRace
from moegen.emulator.frontend import Module, attributes, location
from moegen.emulator.host_eval import HostEvaluator
from moegen.emulator.ops import OpInfo
from moegen.emulator.ops.memory_ops import check_cache_policy

ARCHS = ["gfx942", "gfx950"]
TILE_I32 = 256 * 4  # one K tile: 256 threads x 16 B


@pytest.fixture(params=ARCHS)
def arch(request):
    return request.param


def emu(dumps, arch, spec, **kw):
    return Emulator(dumps(arch) / f"{spec}.mlir", arch=arch, race_check=True, **kw)


# ---- why a bare s_barrier is not enough: the compiled ISA -----------------------------------


def _before_barrier(isa: str) -> list[str]:
    """The instructions between the LDS store (ds_write) and the first s_barrier."""
    body = [ln.split(";")[0].strip() for ln in isa.splitlines()]
    body = [ln for ln in body if ln and not ln.startswith((".", "//"))]
    start = next(i for i, ln in enumerate(body) if ln.startswith("ds_write"))
    end = next(i for i, ln in enumerate(body) if ln.startswith("s_barrier"))
    return body[start + 1 : end]


def test_fence_isa_gpu_barrier_waits_for_lds_a_bare_s_barrier_does_not(dumps, arch):
    """gpu.barrier = release fence + s_barrier + acquire fence: the release fence is the
    `s_waitcnt lgkmcnt(0)` that makes the LDS store complete before the barrier. The bare
    rocdl.s_barrier gets no wait (back-off barrier targets, LLVM SIInsertWaitcnts), so the
    emulator's race check must not count it as ordering (test_lds_race_without_barrier)."""
    fenced = _before_barrier((dumps(arch) / "lds_static.s").read_text())
    bare = _before_barrier((dumps(arch) / "lds_raw_barrier.s").read_text())
    assert fenced[-1] == "s_waitcnt lgkmcnt(0)", fenced
    assert not any("lgkmcnt" in ln for ln in bare), bare


# ---- llvm.fence scopes and placement --------------------------------------------------------


@pytest.mark.parametrize("variant", ["agent", "system", "acq_rel"])
def test_fence_scopes_that_order_waves(dumps, arch, variant):
    out = torch.full((256,), -1, dtype=torch.int32)
    emu(dumps, arch, f"fence_{variant}").launch("lds_fenced_0", [out])
    assert out.tolist() == [255 - t for t in range(256)]


@pytest.mark.parametrize("variant", ["wavefront", "release_after_barrier"])
def test_fence_that_does_not_order_waves_is_a_race(dumps, arch, variant):
    """A wavefront-scope fence orders nothing between waves; a release fence after the barrier
    releases nothing the barrier could publish."""
    out = torch.zeros(256, dtype=torch.int32)
    with pytest.raises(LdsRace) as e:
        emu(dumps, arch, f"fence_{variant}").launch("lds_fenced_0", [out])
    assert "read of LDS byte" in str(e.value) and "kernels_sync.py:" in str(e.value)


def test_fence_unknown_scope_is_refused(dumps, arch):
    with pytest.raises(EmulatorError) as e:
        emu(dumps, arch, "fence_one_as").prepare("lds_fenced_0")
    msg = str(e.value)
    assert "llvm.fence" in msg and "workgroup-one-as" in msg and "kernels_sync.py:" in msg


# ---- a double-buffered LDS pipeline ---------------------------------------------------------


def pipeline_reference(x: torch.Tensor, ntiles: int) -> torch.Tensor:
    """Out[t] = sum over tiles k of chunk (t + 64) % 256 of tile k (4 x i32)."""
    tiles = x.view(ntiles, 256, 4).to(torch.int64).sum(0)
    return tiles.roll(-64, dims=0).to(torch.int32).reshape(-1)


def run_pipeline(dumps, arch, variant, ntiles, seed=0):
    g = torch.Generator().manual_seed(seed + ntiles)
    x = torch.randint(-1000, 1000, (ntiles * TILE_I32,), dtype=torch.int32, generator=g)
    out = torch.full((TILE_I32,), -7, dtype=torch.int32)
    emu(dumps, arch, f"pipeline_{variant}").launch("pipeline_0", [x, out, ntiles])
    return x, out


@pytest.mark.parametrize("ntiles", [1, 2, 3, 4])
@pytest.mark.parametrize("variant", ["double", "single"])
def test_pipeline_exact(dumps, arch, variant, ntiles):
    """1, 2, an odd and an even K-tile count, exact, race check on; the odd count 3 checks the
    middle tile (see test_pipeline_catches_a_dropped_middle_tile)."""
    x, out = run_pipeline(dumps, arch, variant, ntiles)
    assert torch.equal(out, pipeline_reference(x, ntiles))


def test_pipeline_catches_a_dropped_middle_tile(dumps, arch):
    """A planted pipeline bug (the upstream failure mode: an odd tile count loses its middle
    tile) passes at even counts and fails test_pipeline_exact's comparison at 3."""
    for ntiles in (2, 4):
        x, out = run_pipeline(dumps, arch, "double_drop_middle", ntiles)
        assert torch.equal(out, pipeline_reference(x, ntiles))
    x, out = run_pipeline(dumps, arch, "double_drop_middle", 3)
    assert not torch.equal(out, pipeline_reference(x, 3))
    x[TILE_I32 : 2 * TILE_I32] = 0
    assert torch.equal(out, pipeline_reference(x, 3))  # exactly the middle tile is missing


@pytest.mark.parametrize(
    "variant,clean,racy,kind",
    [
        ("double_no_prologue_barrier", None, 1, "read"),
        ("double_no_loop_barrier", 1, 2, "read"),
        ("single_no_trailing_barrier", 1, 2, "write"),  # write-after-read
    ],
)
def test_pipeline_missing_barrier_is_a_race(dumps, arch, variant, clean, racy, kind):
    """Each removed barrier is reported at the first tile count where it matters, and not
    before it (a tile count that never reuses the unguarded bytes runs clean and exact)."""
    if clean is not None:
        x, out = run_pipeline(dumps, arch, variant, clean)
        assert torch.equal(out, pipeline_reference(x, clean))
    with pytest.raises(LdsRace) as e:
        run_pipeline(dumps, arch, variant, racy)
    msg = str(e.value)
    assert f"{kind} of LDS byte" in msg and "kernels_sync.py:" in msg
    assert ("read it" if kind == "write" else "wrote it") in msg


def test_pipeline_isa_has_the_fast_kernel_structure(dumps, arch):
    """The pipeline test kernel exercises what the fast kernels use: 16 B non-temporal buffer
    loads, 16 B LDS stores and loads, and barriers paired with an LDS wait."""
    isa = (dumps(arch) / "pipeline_double.s").read_text()
    assert re.search(r"buffer_load_dwordx4 .* nt\b", isa)
    assert "ds_write_b128" in isa and "ds_read_b128" in isa
    assert re.search(r"s_waitcnt lgkmcnt\(0\)\s+s_barrier", isa)


# ---- buffer cache-policy bits ---------------------------------------------------------------


@pytest.mark.parametrize(
    "aux,ok", [(0, True), (2, True), (1 | 2 | 16, True), (8, False), (4, False)]
)
def test_cache_policy_bits(aux, ok):
    op = OpInfo("rocdl.raw.ptr.buffer.load", "k.py:1", {"aux": aux}, [], [])
    rt = type("Rt", (), {"arch": "gfx942"})()
    if ok:
        assert check_cache_policy(op, rt) == aux
    else:
        with pytest.raises(EmulatorError) as e:
            check_cache_policy(op, rt)
        assert str(e.value).startswith("rocdl.raw.ptr.buffer.load @ k.py:1: buffer op aux")
        assert f"bits 0x{aux:x} the emulator does not model" in str(e.value)


# ---- grid arithmetic in the host launcher ---------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
def test_grid_from_host_division(dumps, arch, signed):
    """grid = (ceil(n / d), 1 + n mod d); n = 10, d = 3: (4, 2). Workgroup (x, y) marks
    Out[64 y + x] = x + 1000 y + 1; every other slot keeps 0."""
    spec = "grid_signed" if signed else "grid_unsigned"
    out = torch.zeros(256, dtype=torch.int32)
    grid, _ = emu(dumps, arch, spec).launch("grid_mark_0", [out, 10, 3])
    assert grid == (4, 2, 1)
    expected = torch.zeros(256, dtype=torch.int32)
    for y in range(2):
        for x in range(4):
            expected[64 * y + x] = x + 1000 * y + 1
    assert torch.equal(out, expected)


def test_grid_division_signedness(dumps, arch):
    """Unsigned, n = -2 (0xFFFFFFFE), d = 0x7FFFFFFF: (n + d - 1) mod 2^32 = 0x7FFFFFFC, / d =
    0; n mod d = 0, + 1 -> (0, 1); read as signed, n mod d would be -2. Signed, n = -7, d = -2:
    (n + d - 1) / d = -10 / -2 = 5; n srem d = -1, + 1 -> (5, 0); read as unsigned, the first
    quotient would be 0."""
    grid = emu(dumps, arch, "grid_unsigned").marshal(
        "grid_mark_0", [torch.zeros(1), -2, 2**31 - 1]
    )[1]
    assert grid == (0, 1, 1)
    assert emu(dumps, arch, "grid_signed").marshal("grid_mark_0", [torch.zeros(1), -7, -2])[1] == (
        5,
        0,
        1,
    )


@pytest.mark.parametrize("size,d,gx", [(256, 1, 4), (256, 2, 2), (200, 1, 4), (192, 1, 3)])
def test_grid_from_tensor_shape(dumps, arch, size, d, gx):
    """grid x = ceil(Out.shape[0] / (64 d)), read from the tensor's layout struct
    (llvm.extractvalue) in the launcher."""
    out = torch.zeros(size, dtype=torch.int32)
    grid, _ = emu(dumps, arch, "grid_shape").launch("grid_mark_0", [out, d])
    assert grid == (gx, 1, 1)
    assert out[:gx].tolist() == list(range(1, gx + 1)) and not out[gx:].any()


@pytest.mark.parametrize(
    "spec,n,d",
    [
        # 1 + 0xFFFFFFFE mod 0xFFFFFFFF = 0xFFFFFFFF, which FlyDSL sign-extends to the i64 -1
        ("grid_unsigned", -2, -1),
        # FlyDSL 0.5's `%` on Int32 is llvm.srem (truncating, not Python's floor modulo):
        # -2 % 3 = -2, + 1 = -1
        ("grid_signed", -2, 3),
    ],
)
def test_grid_negative_dimension_is_refused(dumps, arch, spec, n, d):
    with pytest.raises(EmulatorError, match=r"grid \(0, -1, 1\) has a dimension outside"):
        emu(dumps, arch, spec).marshal("grid_mark_0", [torch.zeros(1), n, d])


@pytest.mark.parametrize(
    "spec,n,d,why",
    [
        ("grid_unsigned", 10, 0, "division by zero"),
        ("grid_signed", 10, 0, "division by zero"),
        ("grid_signed", -(2**31), -1, "INT_MIN / -1"),
    ],
)
def test_grid_division_undefined_behaviour_is_refused(dumps, arch, spec, n, d, why):
    with pytest.raises(ExecError) as e:
        emu(dumps, arch, spec).marshal("grid_mark_0", [torch.zeros(1), n, d])
    msg = str(e.value)
    assert msg.startswith("host launcher launch_grid_div") and why in msg
    assert "kernels_sync.py:" in msg


HOST_MLIR = """
module {
  llvm.func @host(%n: i32, %p: !llvm.ptr) {
    %c = llvm.mlir.constant(7 : i32) : i32
    %q = llvm.udiv %n, %c : i32
    %l = llvm.load %p : !llvm.ptr -> i32
    %r = llvm.urem %n, %l : i32
    %e = llvm.udiv exact %n, %c : i32
    llvm.return
  }
}
"""


def test_host_evaluator_evaluates_arithmetic_and_refuses_what_it_cannot():
    import numpy as np

    m = Module(HOST_MLIR)
    with m.ctx:
        host = m.hosts["host"]
        n, p = host.regions[0].blocks[0].arguments
        ops = list(host.regions[0].blocks[0].operations)
        ev = HostEvaluator(
            "host", {n: np.array(0xFFFFFFF0, np.uint32), p: None}, location, attributes
        )
        assert int(ev(ops[1].results[0])) == 0xFFFFFFF0 // 7  # unsigned, not -16 / 7
        with pytest.raises(EmulatorError, match="launch operand computed by llvm.load"):
            ev(ops[3].results[0])
        # 0xFFFFFFF0 = 7 * 613566754 + 2: `udiv exact` with a remainder is poison
        with pytest.raises(
            ExecError, match="host launcher host: .*exact division with a remainder"
        ):
            ev(ops[4].results[0])
        ev7 = HostEvaluator("host", {n: np.array(7 * 1000, np.uint32)}, location, attributes)
        assert int(ev7(ops[4].results[0])) == 1000
