"""Every generated launcher refuses, before launching, each shape its 32-bit offsets cannot reach.

Meta tensors carry the shapes (nothing is allocated, so a 9 GiB weight or a 16 GiB output costs
nothing); the expected refusals are worked out by hand per scenario.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from moegen.runtime import launch, routing
from moegen.spec.expand import enumerate_variants

# FlyDSL's guards and messages (buffer resources); the Triton variants' (i32 element offsets) are
# checked by their generated boundary tests and tests/test_triton_backend.py.
VARIANTS = [v for v in enumerate_variants("variants.yaml") if v.backend == "flydsl"]


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


def operands(v, *, experts, model_dim, inter, tokens, topk):
    act = getattr(torch, v.dtype.act_torch[v.archs[0]])
    wdt = getattr(torch, v.dtype.weight_torch[v.archs[0]])
    blocks = routing.num_m_blocks(tokens, topk, experts, v.tile_m)
    sorted_routing = (
        meta(blocks * v.tile_m, dtype=torch.int32),
        meta(blocks * v.tile_m, dtype=torch.float32),
        meta(blocks, dtype=torch.int32),
        meta(1, dtype=torch.int32),
    )
    pack = v.dtype.packing  # packed weights (int4: 2 per byte) store K / pack elements
    if v.stage == 1:
        # x per token, or (activation_rows: expanded, int8smooth) per (token, slot)
        x_rows = tokens * topk if v.dtype.activation_rows == "expanded" else tokens
        return (
            meta(x_rows, model_dim, dtype=act),
            meta(experts, 2 * inter, model_dim // pack, dtype=wdt),
            sorted_routing,
        )
    return (
        meta(tokens * topk, inter, dtype=act),
        meta(experts, model_dim, inter // pack, dtype=wdt),
        sorted_routing,
    )


def refused(v, **shape) -> str | None:
    module = importlib.import_module(v.module_import)
    act, w, sorted_routing = operands(v, **shape)
    try:
        # a scaled dtype's scale tensors (meta, of the declared layouts)
        scales = launch.empty_scales(module.VARIANT, act, w)
        module.prepare(act, w, *sorted_routing, topk=shape["topk"], **scales)
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.name)
def test_production_weight(v):
    """MiniMax-M3: W1 is 9 GiB, W2 4.5 GiB (bf16; fp8: 4.5 and 2.25 GiB; int4: 2.25 and 1.12
    GiB). Only one buffer over all experts cannot reach those past 2**32 bytes."""
    msg = refused(v, experts=128, model_dim=6144, inter=3072, tokens=16, topk=4)
    w_bytes = 128 * 6144 * 3072 * (2 if v.stage == 1 else 1) * v.dtype.weight_bits // 8
    if v.addressing == "per_expert" or w_bytes < 2**32:
        assert msg is None
    else:
        weight = "w1 [128, 6144, 6144]" if v.stage == 1 else "w2 [128, 6144, 3072]"
        assert f"{weight} spans" in msg and "2**32" in msg
        assert v.name.replace("_whole_tensor", "_per_expert") in msg


@pytest.mark.parametrize(
    "v", [v for v in VARIANTS if v.addressing == "per_expert"], ids=lambda v: v.name
)
def test_one_expert_slab_past_4_gib(v):
    """One slab of 2 * 174784 * 6144 bf16 (stage 1) or 6144 * 349568 (stage 2) is >= 2**32 bytes;
    a 1-byte weight needs twice the inter."""
    inter = (174784 if v.stage == 1 else 349568) * 16 // v.dtype.weight_bits
    msg = refused(v, experts=2, model_dim=6144, inter=inter, tokens=16, topk=2)
    assert "through one expert's slab buffer resource" in msg
    assert "One expert's slab alone is too large" in msg


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.name)
def test_activations_and_outputs_past_4_gib(v):
    """2**19 tokens x topk 8: the activations, outputs and split-K partials pass 2**32 bytes."""
    msg = refused(v, experts=8, model_dim=8192, inter=512, tokens=2**19, topk=8)
    if v.stage == 1:
        # 4 GiB of 1-byte expanded x rows (int8smooth), else 8 GiB of bf16 ones; out: 4 GiB
        expanded = v.dtype.activation_rows == "expanded"
        x = "x [4194304, 8192] spans" if expanded else "x [524288, 8192] spans"
        expected = [x, "out [524288, 8, 512] spans"]
        if v.split_k > 1:
            expected.append("gate_up_partials (split-K, float32) [4194304, 1024] spans")  # 16 GiB
    else:
        expected = ["out [524288, 8192] spans"]  # >= 8 GiB
        if v.dtype.activation_bits == 16:  # 4 GiB of 16-bit a2 (1-byte fp8 a2: 2 GiB, fits)
            expected.append("a2 [4194304, 512] spans")
        if v.accumulate == "reduce":  # each (token, slot) row is stored before the topk sum
            expected.append("slot_rows (reduce mode) [4194304, 8192] spans")  # 64 GiB
    for piece in expected:
        assert piece in msg
    assert "Split the batch into chunks of at most" in msg
    assert msg.count(" spans ") == len(expected)


@pytest.mark.parametrize(
    "v", [v for v in VARIANTS if v.dtype.activation_rows == "expanded"], ids=lambda v: v.name
)
def test_expanded_activations_line(v):
    """int8smooth's x [topk * tokens, K] grows with the batch through one buffer resource (both
    addressings): the issue's 64k tokens x topk 8 x K 7168 is 3.5 GiB and runs; the guard
    refuses the first token count whose x reaches 2**32 bytes, naming x and the largest batch
    that fits, and accepts the one below it."""
    shape = dict(experts=8, model_dim=7168, inter=256, topk=8)
    assert 65536 * 8 * 7168 == 3.5 * 2**30
    assert refused(v, tokens=65536, **shape) is None
    line = (2**32 - 1) // (8 * 7168)  # 74898 tokens: the last whose x is below 2**32 bytes
    assert refused(v, tokens=line, **shape) is None
    msg = refused(v, tokens=line + 1, **shape)
    assert f"x [{8 * (line + 1)}, 7168] spans" in msg
    assert msg.count(" spans ") == 1  # x alone (out is [tokens, 8, 256] bf16: 0.3 GiB)
    assert f"Split the batch into chunks of at most {line} tokens" in msg
