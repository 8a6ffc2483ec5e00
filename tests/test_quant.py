"""moegen.runtime.quant against straightforward element loops written from the definitions,
the fp8 encodings against independent implementations (an encoder from the bit fields here,
torch's casts, ml_dtypes), and the round trips."""

from __future__ import annotations

import bisect
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from moegen.runtime import preshuffle, reference
from moegen.runtime import quant as Q
from moegen.runtime.quant import scales as quant_scales

FP8 = ["fp8_e4m3fnuz", "fp8_e4m3fn"]
ALL = FP8 + ["int8", "int4"]

# ---- an fp8 e4m3 encoder from the bit fields ------------------------------------------------


def _fp8_magnitudes(name: str) -> list[tuple[float, int]]:
    """(value, code) of every finite non-negative code: 4 exponent bits, 3 mantissa bits.
    e4m3fn: bias 7, code 0x7F is NaN. e4m3fnuz: bias 8, no NaN among 0x00-0x7F."""
    bias = 8 if name == "fp8_e4m3fnuz" else 7
    table = []
    for code in range(0x80):
        e, m = code >> 3, code & 7
        if name == "fp8_e4m3fn" and code == 0x7F:
            continue
        value = m / 8 * 2.0 ** (1 - bias) if e == 0 else (1 + m / 8) * 2.0 ** (e - bias)
        table.append((value, code))
    return table


def _fp8_round(x: float, name: str) -> float:
    """x rounded to the nearest e4m3 value, ties to the even code (even mantissa)."""
    table = _fp8_magnitudes(name)
    values = [v for v, _ in table]
    a = abs(x)
    i = bisect.bisect_left(values, a)
    if i == len(values):
        raise AssertionError(f"{x} is beyond {name}'s range")
    if values[i] == a or i == 0:
        best = i
    else:
        lo, hi = a - values[i - 1], values[i] - a
        best = i - 1 if lo < hi else i if hi < lo else (i - 1 if table[i - 1][1] % 2 == 0 else i)
    return float(np.copysign(values[best], x))


def _fp8_probe_values(name: str) -> list[float]:
    """Every representable magnitude, every midpoint between neighbours (the ties), a point
    just either side of each midpoint, both signs and zero."""
    values = [v for v, _ in _fp8_magnitudes(name)]
    probes = list(values)
    for a, b in zip(values, values[1:]):
        mid = (a + b) / 2
        probes += [mid, float(np.nextafter(np.float32(mid), np.float32(0))), mid + (b - a) / 64]
    return sorted({float(np.float32(p)) for p in probes} | {-p for p in probes})


@pytest.mark.parametrize("name", FP8)
def test_fp8_max_and_storage_match_torch(name):
    f = Q.quant_format(name)
    assert f.qmax == torch.finfo(f.storage).max
    assert _fp8_magnitudes(name)[-1][0] == f.qmax
    assert Q.quant_format(f.storage) is f


@pytest.mark.parametrize("name", FP8)
def test_fp8_cast_matches_the_bit_field_encoder(name):
    """torch's cast (what the quantizer stores) rounds like the encoder above, ties included."""
    probes = _fp8_probe_values(name)
    got = torch.tensor(probes, dtype=torch.float32).to(Q.quant_format(name).storage).float()
    want = torch.tensor([_fp8_round(p, name) for p in probes])
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", FP8)
def test_fp8_matches_ml_dtypes(name):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is a dev extra")
    ml = {"fp8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "fp8_e4m3fn": ml_dtypes.float8_e4m3fn}[name]
    probes = np.array(_fp8_probe_values(name), dtype=np.float32)
    theirs = probes.astype(ml).astype(np.float32)
    ours = torch.from_numpy(probes).to(Q.quant_format(name).storage).float().numpy()
    assert np.array_equal(ours, theirs)
    assert float(ml_dtypes.finfo(ml).max) == Q.quant_format(name).qmax
    # and the quantizer's stored values, on random rows
    x = torch.randn(6, 96, generator=torch.Generator().manual_seed(3)) * 5
    q = Q.quantize_rows(x, name)
    y = (x / q.scale.unsqueeze(-1)).numpy().astype(np.float32)
    assert np.array_equal(q.values.float().numpy(), y.astype(ml).astype(np.float32))


# ---- quantization against element loops ------------------------------------------------------


def _bf16(x: np.float32) -> np.float32:
    """Round a float32 to bfloat16 (nearest, ties to even) from its bits."""
    bits = struct.unpack("<I", struct.pack("<f", float(x)))[0]
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return np.float32(struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0])


def _loop_quantize(run, name: str, bf16_scale: bool = False) -> tuple[list[float], float]:
    """One run of values (a row or a group) quantized value by value, in float32."""
    f = Q.FORMATS[name]
    run = [np.float32(v) for v in run]
    amax = max(abs(v) for v in run)
    scale = np.float32(amax) / np.float32(f.qmax)
    if bf16_scale:
        scale = _bf16(scale)
    if scale == 0:
        scale = np.float32(1)
    out = []
    for v in run:
        y = min(max(float(np.float32(v) / scale), -f.qmax), f.qmax)
        out.append(float(round(y)) if f.integer else _fp8_round(y, name))
    return out, float(scale)


def _edge_rows(qmax: float) -> torch.Tensor:
    """A zero row, a row whose values land exactly on half steps (ties) after scaling by 1,
    a negative row holding -amax, and rows with a single non-zero."""
    ties = [qmax, 0.5, 1.5, 2.5, -0.5, -2.5, -3.5, 6.5 if qmax < 8 else 100.5, 0.0]
    return torch.tensor(
        [
            [0.0] * 9,
            ties,
            [-qmax * 3, 1.0, -2.0, 0.25, 7.0, -0.125, 3.0, 2.0, 1.0],
            [0.0, 0.0, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.0, 0.0],
            [-5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("seed", [0, 1])
def test_per_token_matches_the_loop(name, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat(
        [torch.randn(7, 9, generator=g) * (seed + 1) * 3, _edge_rows(Q.FORMATS[name].qmax)]
    )
    q = Q.quantize_rows(x.to(torch.bfloat16) if seed else x, name)
    src = x.to(torch.bfloat16).float() if seed else x
    assert q.values.dtype == Q.FORMATS[name].storage and q.scale.shape == (12,)
    for r in range(x.shape[0]):
        values, scale = _loop_quantize(src[r].tolist(), name)
        assert q.values[r].float().tolist() == values, r
        assert q.scale[r].item() == scale, r
    assert q.values[7].float().abs().sum() == 0 and q.scale[7] == 1  # the zero row
    if Q.FORMATS[name].integer and name == "int8":  # ties round to even: 0.5 1.5 2.5 -0.5 -2.5
        assert q.values[8, 1:7].tolist() == [0, 2, 2, 0, -2, -4]


def test_rows_in_chunks_and_into_out(monkeypatch):
    """Chunk boundaries change nothing, and `out` is written in place (batch dims kept)."""
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(2))
    whole = Q.quantize_rows(x, "int8")
    monkeypatch.setattr(quant_scales, "CHUNK_ROWS", 3)
    out = Q.Quantized(torch.empty(2, 5, 32, dtype=torch.int8), torch.empty(2, 5), Q.FORMATS["int8"])
    got = Q.quantize_rows(x, "int8", out=out)
    assert got is out and out.scale.shape == (2, 5)
    assert torch.equal(out.values, whole.values) and torch.equal(out.scale, whole.scale)


@pytest.mark.parametrize("name", ALL)
def test_per_channel_matches_the_loop(name):
    w = torch.randn(3, 16, 40, generator=torch.Generator().manual_seed(5))
    w[1, 4] = 0
    w[2, 0, :3] = torch.tensor([-8.0, 8.0, 4.0])
    q = Q.quantize_per_channel(w, name)
    assert q.scale.shape == (3, 16) and q.values.shape == w.shape
    for e in range(3):
        for n in range(16):
            values, scale = _loop_quantize(w[e, n].tolist(), name)
            assert q.values[e, n].float().tolist() == values and q.scale[e, n].item() == scale


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("group,bf16", [(32, False), (16, True), (8, False)])
def test_per_group_matches_the_loop(name, group, bf16):
    w = torch.randn(2, 16, 64, generator=torch.Generator().manual_seed(group)) * 2
    w[0, 3, :group] = 0  # a zero group
    q = Q.quantize_per_group(w, name, group, scale_dtype=torch.bfloat16 if bf16 else torch.float32)
    assert q.scale.shape == (2, 16, 64 // group) and q.group == group
    for e in range(2):
        for n in range(16):
            for j in range(64 // group):
                run = w[e, n, j * group : (j + 1) * group].tolist()
                values, scale = _loop_quantize(run, name, bf16)
                assert q.values[e, n, j * group : (j + 1) * group].float().tolist() == values
                assert q.scale[e, n, j].item() == scale
    if bf16:
        assert torch.equal(q.scale, q.scale.to(torch.bfloat16).float())


def _step_bound(name: str, y: torch.Tensor) -> torch.Tensor:
    """Half a quantization step at scaled value y, in units of the scale."""
    f = Q.FORMATS[name]
    if f.integer:
        return torch.full_like(y, 0.5)
    tiny = _fp8_magnitudes(name)[1][0]  # the smallest subnormal
    return y.abs() * 2.0**-4 + tiny / 2


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(ALL),
    rows=st.lists(
        st.lists(
            st.floats(-1e4, 1e4, allow_nan=False, width=32) | st.sampled_from([0.0, -0.0, 1e-30]),
            min_size=8,
            max_size=8,
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_round_trip_error_is_at_most_half_a_step(name, rows):
    x = torch.tensor(rows, dtype=torch.float32)
    q = Q.quantize_rows(x, name)
    y = x / q.scale.unsqueeze(-1)
    err = (q.dequantize() - x).abs()
    bound = q.scale.unsqueeze(-1) * _step_bound(name, y) * (1 + 1e-5) + x.abs() * 1e-6
    assert (err <= bound).all()
    assert (q.values.float().abs() <= Q.FORMATS[name].qmax).all()


def test_group_round_trip_and_dequantize_shapes():
    w = torch.randn(2, 32, 96, generator=torch.Generator().manual_seed(9))
    q = Q.quantize_per_group(w, "int4", 32)
    err = (q.dequantize() - w).abs().unflatten(-1, (3, 32))
    assert (err <= q.scale.unsqueeze(-1) * 0.5 * (1 + 1e-5)).all()
    assert torch.equal(q[1], q.dequantize()[1])
    with pytest.raises(ValueError, match=r"scale has shape \(2, 32\).*need \(2, 32, 3\)"):
        Q.dequantize(q.values, q.scale[..., 0], 32)


# ---- int8smooth ------------------------------------------------------------------------------


def _routing(tokens, topk, experts, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(experts, generator=g)[:topk] for _ in range(tokens)])


@pytest.mark.parametrize("chunk", [quant_scales.CHUNK_ROWS, 2])
def test_smooth_quantize_matches_the_loop_slot_major(monkeypatch, chunk):
    monkeypatch.setattr(quant_scales, "CHUNK_ROWS", chunk)
    g = torch.Generator().manual_seed(4)
    tokens, topk, experts, k = 5, 3, 4, 24
    x = torch.randn(tokens, k, generator=g).to(torch.bfloat16)
    x[2] = 0
    sm = 0.5 + torch.rand(experts, k, generator=g)
    ids = _routing(tokens, topk, experts, 4)
    q = Q.quantize_smooth(x, sm, ids)
    assert q.values.shape == (topk * tokens, k) and q.scale.shape == (topk * tokens,)
    assert q.values.dtype == torch.int8
    for t in range(tokens):
        for s in range(topk):
            e = int(ids[t, s])
            row = [
                np.float32(a) * np.float32(b) for a, b in zip(x[t].float().tolist(), sm[e].tolist())
            ]
            values, scale = _loop_quantize(row, "int8")
            r = Q.expanded_row(t, s, tokens)
            assert r == s * tokens + t
            assert q.values[r].float().tolist() == values and q.scale[r].item() == scale
    assert torch.equal(Q.smooth(x, sm, ids)[1, 2], x[1].float() * sm[int(ids[1, 2])])


def test_smooth_stage2_is_token_major_and_per_slot():
    g = torch.Generator().manual_seed(6)
    tokens, topk, experts, inter = 4, 2, 3, 16
    a2 = torch.randn(tokens, topk, inter, generator=g)
    sm = 0.5 + torch.rand(experts, inter, generator=g)
    ids = _routing(tokens, topk, experts, 6)
    q = Q.quantize_smooth(a2, sm, ids, slot_major=False)
    want = Q.quantize_rows(a2 * sm[ids], "int8")
    assert torch.equal(q.values, want.values.view(-1, inter))
    assert torch.equal(q.scale, want.scale.view(-1))


# ---- int4 packing and its preshuffled layouts ------------------------------------------------


def _all_int4(shape, seed):
    return torch.randint(
        -8, 8, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int8
    )


def test_pack_matches_the_loop_and_round_trips():
    v = _all_int4((3, 16), 0)
    v[0, :16] = torch.arange(-8, 8, dtype=torch.int8)
    p = Q.pack_int4(v)
    assert p.dtype == torch.uint8 and p.shape == (3, 8)
    for r in range(3):
        for j in range(8):
            lo, hi = int(v[r, 2 * j]) & 0xF, int(v[r, 2 * j + 1]) & 0xF
            assert int(p[r, j]) == lo | hi << 4
    assert int(p[0, 0]) == 0x98  # -8 (0x8) low, -7 (0x9) high
    assert torch.equal(Q.unpack_int4(p), v)


def _split_nibble_loop(v: torch.Tensor) -> torch.Tensor:
    """The split_nibbles layout of one [N, K] slab, value by value: the 16-row x 32-value
    preshuffle position p, then byte (p // 8) * 4 + p % 4, high nibble when p % 8 >= 4."""
    n_dim, k_dim = v.shape
    out = [0] * (n_dim * k_dim // 2)
    for n in range(n_dim):
        for k in range(k_dim):
            p = ((n // 16) * (k_dim // 32) + k // 32) * 512 + ((k % 32) // 16) * 256
            p += (n % 16) * 16 + k % 16
            byte, high = (p // 8) * 4 + p % 4, p % 8 >= 4
            out[byte] |= (int(v[n, k]) & 0xF) << (4 if high else 0)
    return torch.tensor(out, dtype=torch.uint8).view(n_dim, k_dim // 2)


def _sign4(nibble: int) -> int:
    return nibble - 16 if nibble & 8 else nibble


def test_split_nibbles_matches_the_loop_and_the_kernel_unpack():
    v = _all_int4((32, 64), 1)
    p = Q.shuffle_int4(v)
    assert torch.equal(p, _split_nibble_loop(v))
    for n, k in [(0, 0), (5, 17), (31, 63), (16, 32), (9, 44)]:
        byte, high = Q.int4_offset(n, k, 64)
        assert _sign4((int(p.flatten()[byte]) >> (4 if high else 0)) & 0xF) == int(v[n, k])
    # FlyDSL's 7-op unpack of one dword: low nibbles then high nibbles, sign-extended, are 8
    # K-consecutive values; lane l of a 16-row x 32-value block (256 bytes) owns bytes
    # [l * 8, +8): row l % 16, values [(l // 16) * 16, +16).
    flat = p.flatten().tolist()
    for block in range(4):
        n0, k0 = (block // 2) * 16, (block % 2) * 32
        for lane in range(32):
            for half in range(2):
                dword = flat[block * 256 + lane * 8 + half * 4 :][:4]
                unpacked = [_sign4(b & 0xF) for b in dword] + [_sign4(b >> 4) for b in dword]
                k = k0 + (lane // 16) * 16 + half * 8
                assert unpacked == v[n0 + lane % 16, k : k + 8].tolist()


def test_packed_16x16_is_the_byte_preshuffle_of_plain_packing():
    v = _all_int4((2, 32, 128), 2)
    p = Q.shuffle_int4(v, "packed_16x16")
    for e in range(2):
        plain = Q.pack_int4(v[e])
        flat = p[e].flatten()
        for n in range(0, 32, 7):
            for kb in range(64):  # byte kb of row n, the preshuffle formula with 16-byte lanes
                off = ((n // 16) * 2 + kb // 32) * 512 + ((kb % 32) // 16) * 256 + (n % 16) * 16
                assert flat[off + kb % 16] == plain[n, kb]
    byte, high = Q.int4_offset(17, 51, 128, "packed_16x16")
    assert high and _sign4(int(p[0].flatten()[byte]) >> 4) == int(v[0, 17, 51])


@pytest.mark.parametrize("layout", Q.INT4_LAYOUTS)
def test_shuffle_round_trips_and_slabs_stay_put(layout):
    v = _all_int4((3, 48, 128), 3)
    p = Q.shuffle_int4(v, layout)
    assert p.shape == (3, 48, 64) and torch.equal(Q.unshuffle_int4(p, layout), v)
    assert torch.equal(p[1], Q.shuffle_int4(v[1], layout))
    assert torch.equal(p[1, 16:32], Q.shuffle_int4(v[1, 16:32], layout))  # 16-row groups in place


def test_lazy_experts_touch_only_their_slabs():
    """Only the listed experts are read and written: the others hold garbage (out of int4's
    range in values, NaN in weights) that would raise if read."""
    v = torch.full((4, 16, 64), 100, dtype=torch.int8)
    v[2] = _all_int4((16, 64), 4)
    out = torch.full((4, 16, 32), 0xAB, dtype=torch.uint8)
    Q.shuffle_int4(v, experts=[2], out=out)
    assert torch.equal(out[2], Q.shuffle_int4(v[2])) and (out[[0, 1, 3]] == 0xAB).all()
    w = torch.full((4, 16, 64), float("nan"))
    w[1] = torch.randn(16, 64)
    for quantize in (Q.quantize_per_channel, Q.quantize_per_group):
        q = quantize(w, "int4", experts=[1])
        assert torch.equal(q.values[1], quantize(w[1:2], "int4").values[0])
    with pytest.raises(ValueError, match="inf or NaN"):
        Q.quantize_per_channel(w, "int8", experts=[0])


def test_huge_empty_weights_cost_one_slab():
    """A 2 GiB torch.empty bf16 weight: quantizing, packing and the reference read only the
    routed experts (the rest is never touched, so never committed to memory)."""
    e_count, n, k = 128, 256, 32768
    w = torch.empty(e_count, n, k, dtype=torch.bfloat16)
    routed = [3, 127]
    for e in routed:
        w[e] = torch.randn(n, k).to(torch.bfloat16)
    q = Q.quantize_per_group(w, "int4", experts=routed)
    packed = Q.shuffle_int4(q.values, experts=routed)
    assert torch.equal(Q.unshuffle_int4(packed[127]), q.values[127])
    x = torch.randn(2, k)
    out = reference.stage1(x, q, torch.tensor([[3], [127]]))
    for t, e in enumerate(routed):
        h = q[e] @ x[t]
        want = torch.nn.functional.silu(h[: n // 2]) * h[n // 2 :]
        assert torch.allclose(out[t, 0], want, rtol=1e-4, atol=1e-4)


def test_group_scales_kernel_layout_matches_the_loop():
    s = torch.rand(2, 16, 6, generator=torch.Generator().manual_seed(8)) + 0.1
    f32 = Q.group_scales_for_kernel(s)
    assert f32.shape == (2, 6, 16)
    bf = Q.group_scales_for_kernel(s, torch.bfloat16)
    assert bf.shape == (2, 3, 16, 2) and bf.dtype == torch.bfloat16
    words = bf.view(torch.int32)  # one dword per (expert, group pair, row): even group low
    for e in range(2):
        for n in range(16):
            for j in range(6):
                assert f32[e, j, n] == s[e, n, j]
                half = s[e, n, j].to(torch.bfloat16).view(torch.int16).item() & 0xFFFF
                assert (int(words[e, j // 2, n, 0]) >> (16 * (j % 2))) & 0xFFFF == half
    assert torch.equal(Q.group_scales_from_kernel(f32), s)
    assert torch.equal(Q.group_scales_from_kernel(bf), s.to(torch.bfloat16).float())


# ---- the reference on dequantized values -----------------------------------------------------


def test_reference_on_dequantized_values_matches_the_loop():
    g = torch.Generator().manual_seed(11)
    tokens, topk, experts, model_dim, inter = 6, 2, 4, 64, 32
    x = torch.randn(tokens, model_dim, generator=g)
    w1 = torch.randn(experts, 2 * inter, model_dim, generator=g) / 8
    w2 = torch.randn(experts, model_dim, inter, generator=g) / 8
    ids, tw = _routing(tokens, topk, experts, 11), torch.rand(tokens, topk, generator=g)
    xq, w1q = Q.quantize_rows(x, "fp8_e4m3fnuz"), Q.quantize_per_group(w1, "int4")
    w2q = Q.quantize_per_channel(w2, "int8")
    xd, w1d, w2d = xq.dequantize(), w1q.dequantize(), w2q.dequantize()
    s1 = reference.stage1_dequantized(xq, w1q, ids)
    for t in range(tokens):
        for s in range(topk):
            h = w1d[int(ids[t, s])] @ xd[t]
            want = torch.nn.functional.silu(h[:inter]) * h[inter:]
            assert torch.allclose(s1[t, s], want, rtol=1e-5, atol=1e-5)
    out = reference.moe_dequantized(xq, w1q, w2q, ids, tw, "int8")
    a2 = Q.quantize_rows(s1, "int8").dequantize()
    want = torch.zeros(tokens, model_dim)
    for t in range(tokens):
        for s in range(topk):
            want[t] += (w2d[int(ids[t, s])] @ a2[t, s]) * tw[t, s]
    assert torch.allclose(out, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, reference.moe(x, w1, w2, ids, tw), rtol=1e-5, atol=1e-5)


def test_reference_reads_int8smooth_rows_slot_major():
    g = torch.Generator().manual_seed(12)
    tokens, topk, experts, model_dim, inter = 5, 3, 4, 32, 16
    x = torch.randn(tokens, model_dim, generator=g)
    sm = 0.5 + torch.rand(experts, model_dim, generator=g)
    w1 = Q.quantize_per_channel(torch.randn(experts, 2 * inter, model_dim, generator=g), "int8")
    ids = _routing(tokens, topk, experts, 12)
    xq = Q.quantize_smooth(x, sm, ids)
    got = reference.stage1_dequantized(xq, w1, ids)
    rows = xq.dequantize()
    for t in range(tokens):
        for s in range(topk):
            h = w1[int(ids[t, s])] @ rows[Q.expanded_row(t, s, tokens)]
            want = torch.nn.functional.silu(h[:inter]) * h[inter:]
            assert torch.allclose(got[t, s], want, rtol=1e-5, atol=1e-5)
    sm2 = 0.5 + torch.rand(experts, inter, generator=g)
    w2 = Q.quantize_per_channel(torch.randn(experts, model_dim, inter, generator=g), "int8")
    tw = torch.rand(tokens, topk, generator=g)
    out = reference.moe_dequantized(xq, w1, w2, ids, tw, smoothing2=sm2)
    a2 = Q.quantize_smooth(got, sm2, ids, slot_major=False).dequantize()
    assert torch.allclose(out, reference.stage2(a2, w2, ids, tw), rtol=1e-6, atol=1e-6)


# ---- bad input -------------------------------------------------------------------------------


def test_bad_input_names_the_argument_shape_and_fix():
    w = torch.randn(2, 16, 48)
    cases = [
        (lambda: Q.quant_format("int2"), r"fmt='int2'.*use one of"),
        (lambda: Q.quantize_per_group(w, "int4", 32), r"w's K .* 48 is not divisible by group=32"),
        (lambda: Q.quantize_per_channel(w[0], "int8"), r"w has shape \(16, 48\).*\[E, N, K\]"),
        (lambda: Q.quantize_rows(w.to(torch.int8), "int8"), r"x is torch.int8.*unquantized"),
        (lambda: Q.quantize_per_channel(w, "int8", experts=[2]), r"experts \[2\].*\[0, 2\)"),
        (
            lambda: Q.quantize_per_channel(w, "int8", out=Q.quantize_rows(w[0], "int8")),
            r"out.values .*\(16, 48\).*\(2, 16, 48\)",
        ),
        (lambda: Q.pack_int4(torch.zeros(4, 5, dtype=torch.int8)), r"\(4, 5\).*must be even"),
        (lambda: Q.pack_int4(torch.full((2, 4), 9, dtype=torch.int8)), r"outside int4's \[-8, 7\]"),
        (lambda: Q.pack_int4(torch.zeros(2, 4)), r"values is torch.float32.*int8"),
        (lambda: Q.unpack_int4(torch.zeros(2, 4, dtype=torch.int8)), r"packed is torch.int8"),
        (
            lambda: Q.shuffle_int4(torch.zeros(16, 32, dtype=torch.int8), "packed_16x16"),
            r"\(16, 32\).*'packed_16x16'.*multiple of 64",
        ),
        (lambda: Q.shuffle_int4(torch.zeros(8, 32, dtype=torch.int8)), r"multiple of 16"),
        (lambda: Q.shuffle_int4(torch.zeros(16, 32, dtype=torch.int8), "nibbles"), "layout="),
        (
            lambda: Q.group_scales_for_kernel(torch.ones(1, 16, 3), torch.bfloat16),
            r"\(1, 16, 3\).*even group count",
        ),
        (
            lambda: Q.quantize_smooth(torch.randn(3, 8), torch.ones(2, 4), torch.zeros(3, 1)),
            r"topk_ids is torch.float32",
        ),
        (
            lambda: Q.quantize_smooth(
                torch.randn(3, 8), torch.ones(2, 4), torch.zeros(3, 1).long()
            ),
            r"smoothing has shape \(2, 4\).*\[E, 8\]",
        ),
        (
            lambda: Q.quantize_smooth(torch.randn(3, 8), torch.ones(2, 8), torch.full((3, 1), 2)),
            r"outside \[0, 2\)",
        ),
        (
            lambda: reference.stage1_dequantized(torch.randn(4, 8), w, torch.zeros(3, 2).long()),
            r"x has shape \(4, 8\).*\[3, K\].*\[6, K\]",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert preshuffle.K_BLOCK == 32  # the split_nibbles loop above hard-codes aiter's 32
