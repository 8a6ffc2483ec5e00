"""Triton fp8 (a8w8, per-token x per-channel scales in the epilogue): what Triton's CPU
interpreter can run, what the Triton template limits accept and refuse, the compile entry's
signature per arch, and that the generated kernels read and apply the scales."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch

from moegen.backends.triton import harness

EXECUTOR = harness.use_interpreter_without_gpu()  # before any @triton.jit module is imported

from moegen.backends.triton import entry  # noqa: E402
from moegen.backends.triton.limits import check_tiles  # noqa: E402
from moegen.runtime import routing  # noqa: E402

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

interpreter_only = pytest.mark.skipif(
    EXECUTOR != "interpreter", reason="a GPU is present: the interpreter's fp8 is not in play"
)


def _dot_probe(a_ptr, b_ptr, c_ptr):
    r = tl.arange(0, 16)
    k = tl.arange(0, 32)
    a = tl.load(a_ptr + r[:, None] * 32 + k[None, :])
    b = tl.load(b_ptr + k[:, None] * 16 + r[None, :])
    tl.store(c_ptr + r[:, None] * 16 + r[None, :], tl.dot(a, b))


@interpreter_only
def test_interpreter_fp8_dot(monkeypatch):
    """triton 3.6's interpreter: an e4m3fn tl.dot is exact (products of fp8 values sum exactly
    in f32 here), while e4m3fnuz (gfx942's fp8) has no interpreter type at all. Hence the
    interpreter cases of the fp8 boundary tests use sm90's e4m3fn, and gfx942's fnuz kernels
    are checked by compiling them (`moegen verify`, test_compile_and_audit)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    kernel = triton.jit(_dot_probe)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=g)
    b = torch.randn(32, 16, generator=g)
    fn = torch.float8_e4m3fn
    c = torch.empty(16, 16)
    kernel[(1,)](a.to(fn), b.to(fn), c)
    assert float((c - a.to(fn).float() @ b.to(fn).float()).abs().max()) < 1e-5
    with pytest.raises(Exception, match="fp8e4b8"):
        kernel[(1,)](a.to(torch.float8_e4m3fnuz), b.to(torch.float8_e4m3fnuz), c)


def _variant(**over):
    scales = [
        SimpleNamespace(kind="per_token", applied="epilogue"),
        SimpleNamespace(kind="per_channel", applied="epilogue"),
    ]
    dtype = dict(name="fp8", activation_bits=8, weight_bits=8, packing=1, scales=scales)
    dtype.update(over.pop("dtype", {}))
    v = dict(
        addressing="per_expert",
        stage=1,
        split_k=1,
        tile_m=32,
        tile_n=64,
        tile_k=128,
        out_dtype="float32",
        configs=(),
        dtype=SimpleNamespace(**dtype),
    )
    v.update(over)
    return SimpleNamespace(**v)


def test_limits_accept_fp8_and_refuse_what_the_templates_lack():
    assert check_tiles(_variant()) == []
    assert check_tiles(_variant(stage=2)) == []
    assert check_tiles(_variant(split_k=2)) == [
        "split-K partials are summed unscaled: a scaled dtype takes split_k 1"
    ]
    assert check_tiles(_variant(dtype=dict(scales=[]))) == [
        "dtype 'fp8': 8-bit operands need their scales declared"
    ]
    group = [SimpleNamespace(kind="per_group", applied="weights")]
    assert check_tiles(_variant(dtype=dict(scales=group))) == [
        "the Triton templates apply per_token and per_channel scales in the epilogue only "
        "(dtype 'fp8' declares [('per_group', 'weights')])"
    ]
    (problem,) = check_tiles(_variant(dtype=dict(weight_bits=4, packing=2)))
    assert "8/4-bit, packing 2" in problem


def test_entry_signature_per_arch():
    """The compile entry types the fp8 pointers per arch (gfx942: fnuz = fp8e4b8), stage 1's
    output as the dtype's bf16 intermediate, and the two float32 scale tensors last."""
    s1 = importlib.import_module("generated.triton.moe_s1_fp8_per_expert_triton")
    s2 = importlib.import_module("generated.triton.moe_s2_fp8_whole_tensor_triton")
    sig = entry.signature(s1, "gfx942")
    assert (sig["X"], sig["W"], sig["Out"]) == ("*fp8e4b8", "*fp8e4b8", "*bf16")
    assert list(sig)[7:9] == ["ActScale", "WScale"]
    assert (sig["ActScale"], sig["WScale"]) == ("*fp32", "*fp32")
    sig = entry.signature(s2, "sm90")
    assert (sig["A2"], sig["W"], sig["Out"]) == ("*fp8e4nv", "*fp8e4nv", "*fp32")
    case = dict(experts=4, model_dim=256, inter=128, tokens=8, topk=2, config={"block_m": 16})
    sizes = entry.tensor_bytes(s1, case, "gfx950")
    assert sizes[6:] == [8 * 2 * 128 * 2, 4 * 8, 4 * 4 * 256]  # bf16 out, x_scale, w1_scale


def _stage_inputs(stage: int, tokens=8, experts=4, model_dim=256, inter=128, topk=2):
    name = {1: "moe_s1_fp8_per_expert_triton", 2: "moe_s2_fp8_per_expert_triton"}[stage]
    module = importlib.import_module(f"generated.triton.{name}")
    device = "cuda" if EXECUTOR == "gpu" else "cpu"
    fp8 = getattr(torch, module.ACT_DTYPES["sm90" if not torch.version.hip else "gfx950"])
    g = torch.Generator().manual_seed(1)
    topk_ids = torch.stack([torch.randperm(experts, generator=g)[:topk] for _ in range(tokens)])
    topk_w = torch.rand(tokens, topk, generator=g)
    sorted_r = routing.moe_sorting(topk_ids.int(), topk_w, experts, module.block_m(tokens))
    sorted_r = tuple(t.to(device) for t in sorted_r)
    rows, n, k = (tokens, 2 * inter, model_dim) if stage == 1 else (tokens * topk, model_dim, inter)
    act = (torch.randn(rows, k, generator=g) * 100).to(fp8).to(device)
    w = (torch.randn(experts, n, k, generator=g) * 100).to(fp8).to(device)
    act_scale = torch.full((rows,), 0.01, device=device)
    w_scale = torch.full((experts, n), 0.01, device=device)
    return module, act, w, sorted_r, act_scale, w_scale, topk, topk_ids


def test_stage2_scales_multiply_the_accumulator():
    """Doubling a2_scale and w2_scale (powers of two: exact) must give exactly 4x the output:
    both scales reach the accumulator. A kernel that skipped either would give 2x or 1x."""
    module, a2, w2, r, a_s, w_s, topk, _ = _stage_inputs(2)
    base = module.moe_stage2(a2, w2, *r, topk=topk, a2_scale=a_s, w2_scale=w_s).cpu()
    doubled = module.moe_stage2(a2, w2, *r, topk=topk, a2_scale=2 * a_s, w2_scale=2 * w_s).cpu()
    assert base.abs().max() > 0
    torch.testing.assert_close(doubled, 4 * base, rtol=1e-6, atol=1e-6)


def test_stage1_reads_only_its_experts_weight_scale_row():
    """Each expert's w1_scale row is read from its own (64-bit) base: NaN in every row of the
    experts no token is routed to leaves the output finite, NaN in a routed one does not."""
    module, x, w1, r, xs, ws, topk, topk_ids = _stage_inputs(1, tokens=2, topk=1)
    routed = sorted({int(e) for e in topk_ids.flatten()})
    idle = [e for e in range(ws.shape[0]) if e not in routed]
    assert idle and routed
    poisoned = ws.clone()
    poisoned[idle] = float("nan")
    out = module.moe_stage1(x, w1, *r, topk=topk, x_scale=xs, w1_scale=poisoned)
    assert torch.isfinite(out.float()).all()
    poisoned[routed[0]] = float("nan")
    out = module.moe_stage1(x, w1, *r, topk=topk, x_scale=xs, w1_scale=poisoned)
    assert not torch.isfinite(out.float()).all()
