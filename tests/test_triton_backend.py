"""The Triton backend: the CPU interpreter's bf16 tl.dot defect and the kernels' workaround,
the offset lines the address model states for Triton per target, and the LLVM-IR audit of
weight addressing."""

from __future__ import annotations

import importlib

import pytest
import torch

from moegen.backends.triton import harness

# Without a GPU the kernels run in the interpreter: choose it before any @triton.jit module
# (device.py, the generated kernels) is imported, as the generated boundary tests do.
EXECUTOR = harness.use_interpreter_without_gpu()

from moegen.backends.triton import compile as triton_compile  # noqa: E402
from moegen.backends.triton import device  # noqa: E402
from moegen.core import address_model, sweep  # noqa: E402

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")


def _dot_probe(a_ptr, b_ptr, c_ptr, UPCAST: tl.constexpr):
    r = tl.arange(0, 16)
    k = tl.arange(0, 32)
    a = tl.load(a_ptr + r[:, None] * 32 + k[None, :])
    b = tl.load(b_ptr + k[:, None] * 16 + r[None, :])
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    tl.store(c_ptr + r[:, None] * 16 + r[None, :], tl.dot(a, b))


def _interpreted_dot(monkeypatch, dtype: torch.dtype, upcast: bool) -> float:
    """Max |error| of a 16x32 @ 32x16 tl.dot in Triton's CPU interpreter against fp32."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    kernel = triton.jit(_dot_probe)  # decorated under the interpreter
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=g).to(dtype)
    b = torch.randn(32, 16, generator=g).to(dtype)
    c = torch.empty(16, 16)
    kernel[(1,)](a, b, c, upcast)
    return float((c - a.float() @ b.float()).abs().max())


def test_interpreter_bf16_dot_is_wrong_and_upcast_fixes_it(monkeypatch):
    """The defect (triton 3.6's interpreter): bf16 tl.dot returns garbage; fp16 is right; the
    kernels' workaround (both operands to float32 first) is exact. If this starts failing on
    its first assert, the interpreter was fixed and DOT_UPCAST can go."""
    assert _interpreted_dot(monkeypatch, torch.bfloat16, upcast=False) > 1.0
    assert _interpreted_dot(monkeypatch, torch.bfloat16, upcast=True) < 1e-5
    assert _interpreted_dot(monkeypatch, torch.float16, upcast=False) < 1e-4


def test_dot_upcast_only_in_the_interpreter_for_bf16(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert device.dot_upcast("bfloat16") and not device.dot_upcast("float16")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not device.dot_upcast("bfloat16")


def test_generated_kernel_needs_the_workaround(monkeypatch):
    """A generated bf16 kernel in the interpreter: right with DOT_UPCAST, wrong rows without."""
    if EXECUTOR != "interpreter":
        pytest.skip("a GPU is present: its kernels compile for it, the interpreter is not used")
    kernel = importlib.import_module("generated.triton.moe_s1_bf16_per_expert_triton")
    case = sweep.BoundaryCase("small", 128, 4, 2, "small", 8, True)
    good = harness.run_case(kernel, case, "interpreter", model_dim=256, arch="sm90")
    assert good.passed, good.report()
    monkeypatch.setattr(kernel, "dot_upcast", lambda dtype: False)
    bad = harness.run_case(kernel, case, "interpreter", model_dim=256, arch="sm90")
    assert not bad.passed and all(not row.passed for row in bad.rows)


# ---- the address model's Triton lines ----------------------------------------------------


def _variant(stage=1, split_k=1, addressing="per_expert", targets=None, act_bits=16, wbits=16):
    return {
        "name": f"moe_s{stage}_x_{addressing}_splitk{split_k}_triton",
        "stage": stage,
        "addressing": addressing,
        "split_k": split_k,
        "tile_m": 16,
        "tile_n": 64,
        "tile_k": 64,
        "act_bits": act_bits,
        "weight_bits": wbits,
        "weight_pack": 1,
        "out_bits": 32 if stage == 2 else act_bits,
        "backend": "triton",
        "targets": targets or {"sm90": "nvidia", "gfx942": "amd"},
    }


@pytest.mark.parametrize(
    "bits, targets, limit",
    [
        (16, {"sm90": "nvidia"}, 2**32),  # 2**31 bf16 elements = 4 GiB
        (16, {"gfx942": "amd"}, 2**32),  # the buffer line coincides
        (8, {"sm90": "nvidia", "gfx942": "amd"}, 2**31),  # 2**31 fp8 elements = 2 GiB first
        (32, {"sm90": "nvidia"}, 2**33),  # 2**31 float32 elements = 8 GiB
        (32, {"sm90": "nvidia", "gfx942": "amd"}, 2**32),  # the AMD buffer line comes first
    ],
)
def test_triton_offset_line_per_target(bits, targets, limit):
    got, text = address_model.offset_line(_variant(targets=targets), bits)
    assert got == limit, text


def test_flydsl_line_is_unchanged():
    v = dict(_variant(), backend="flydsl")
    assert address_model.offset_line(v, 16) == (0, "")
    v.pop("backend")  # FlyDSL's VARIANT dicts name no backend
    assert address_model.offset_line(v, 32) == (0, "")


def test_split_k_partials_refused_on_amd_only_past_4_gib():
    """float32 partials of 5.3 GiB: within 2**31 elements (NVIDIA), past 2**32 bytes (AMD)."""
    p = dict(experts=2, model_dim=6144, inter=174720, tokens=2048, topk=2)
    nvidia = address_model.check(_variant(split_k=2, targets={"sm90": "nvidia"}), **p)
    amd = address_model.check(_variant(split_k=2, targets={"gfx942": "amd"}), **p)
    assert not any("gate_up_partials" in m for m in nvidia)
    assert any("gate_up_partials" in m and "AMD buffer op" in m for m in amd)


# ---- the LLVM-IR weight-addressing audit --------------------------------------------------

_IR = """define void @k(ptr addrspace(1) %0, ptr addrspace(1) %1, ptr addrspace(1) %2, ptr addrspace(1) %3, ptr addrspace(1) %4) {
  %6 = getelementptr i32, ptr addrspace(1) %4, i64 %5
  %7 = load <1 x i32>, ptr addrspace(1) %6, align 4
  %8 = extractelement <1 x i32> %7, i64 0
  {use}
}"""


@pytest.mark.parametrize(
    "use, expected",
    [
        ("%9 = sext i32 %8 to i64", "per_expert"),
        ("%9 = shl i32 %8, 16", "whole_tensor"),
        ("%9 = mul nsw i32 %8, 37748736", "whole_tensor"),
        ("%9 = add i32 %5, 1", "undetermined"),
    ],
)
def test_llir_weight_audit(use, expected):
    assert triton_compile.weight_addressing_llir(_IR.replace("{use}", use))[0] == expected
