"""A small bf16 GEMM through MFMA (16x16x16 on gfx942, 16x16x32 on gfx950) against torch, and
the throughput helper on it."""

import pytest
import torch

from compile_dumps import GEMM_SHAPE
from moegen.emulator import Emulator, measure


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
def test_gemm_matches_torch(dumps, arch):
    m, n, k = GEMM_SHAPE["M"], GEMM_SHAPE["N"], GEMM_SHAPE["K"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, generator=g).to(torch.bfloat16)
    w = torch.randn(n, k, generator=g).to(torch.bfloat16)
    out = torch.full((m, n), float("nan"))
    emu = Emulator(dumps(arch) / "gemm.mlir", arch=arch)
    rate = measure(emu, "gemm_0", [x, w, out])
    ref = x.float() @ w.float().T
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-4)
    assert rate.mfma == (m // 16) * (n // 16) * (k // (16 if arch == "gfx942" else 32))
    print(f"{arch} gemm {m}x{n}x{k}: {rate}")
