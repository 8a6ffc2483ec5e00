"""int4 weights: packing two values per byte, the preshuffled byte layouts the kernels read,
and the layout of their per-group scales.

Values are signed int4 in [-8, 7] held one per int8 (what quantize_* with "int4" returns).

Plain packing (`pack_int4`): byte j of a row holds K elements 2j (low nibble) and 2j + 1
(high nibble). Upstream: FlyDSL tests/kernels/utils/gemm_common_utils.py `pack_uint4` ("low
nibble = even K, high = odd K"), aiter aiter/utility/fp4_utils.py `pack_uint4`, and aiter
aiter/int4_utils.py `convert_int8_to_uint32_int4` (element 0 in bits 0-3).

Preshuffled layouts (INT4_LAYOUTS), both built on moegen.runtime.preshuffle (aiter's
shuffle_weight(w, (16, 16))):
- "split_nibbles": shuffle the UNPACKED int8 values (16 values per 16-byte lane group, 32 per
  K block), then pack every run of 8 consecutive shuffled values v0..v7 into 4 bytes with
  byte j = v_j | v_{j+4} << 4 (low nibbles v0..v3, high nibbles v4..v7). So one lane's 16
  K-consecutive values are 8 bytes, and a 16-row x 32-K block is 256 bytes. This is what
  FlyDSL's moe_gemm_2stage W4A8 and the int4_bf16 (W4A16) path read: FlyDSL
  tests/kernels/test_moe_gemm_2stage.py `_pack_shuffled_int8_to_packed_int4` and aiter
  aiter/ops/shuffle.py `pack_int8_to_packed_int4` (both applied to shuffle_weight of the int8
  values); its in-kernel inverse is the 7-op `_unpack_int4_to_int8_pair` of FlyDSL
  kernels/common/mma/mfma_preshuffle_pipeline.py: one dword -> even = its 4 low nibbles
  sign-extended (v0..v3), odd = its 4 high nibbles (v4..v7), concatenated = v0..v7 in K order.
  moegen's int4 (W4A8) variants read it (variants.yaml weight_layout split_nibbles_16x16;
  moegen.backends.flydsl.device.unpack_int4_i8).
- "packed_16x16": plain-pack, then shuffle the packed BYTES (16 bytes = 32 values per lane
  group, 64 values per K block): FlyDSL's newer moe_2stage_a16wmix int4 path
  (tests/kernels/test_moe_gemm.py `_a16wi4_pack_shuffle_w`); its scales are bf16
  [E, N, G // 2, 2], i.e. quantize_per_group's [E, N, G] cast to bf16 with no re-layout.
  moegen's int4_bf16 (W4A16) variants read it (weight_layout preshuffle_16x16 of packed int4).

Per-group scales [E, N, G] (G = K // 32) as the int4_bf16 kernels read them
(`group_scales_for_kernel`): fp32 as [E, G, N]; bf16 as [E, G // 2, N, 2], two adjacent groups
of one row in one dword, the even group in the low half (aiter aiter/ops/shuffle.py and FlyDSL
tests/utils.py `shuffle_scale_for_int4`; the kernel side is `_load_groupwise_scale` /
`extract_bf16_scale` in mfma_preshuffle_pipeline.py). Per-channel scales [E, N] are read as
they are (E * N fp32, expert-major; aiter's shuffle_scale returns fp32 scales unchanged).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from moegen.runtime import preshuffle

INT4_MIN, INT4_MAX = -8, 7
SPLIT_RUN = 8  # values packed into one dword by "split_nibbles"
INT4_LAYOUTS = ("split_nibbles", "packed_16x16")
"""The preshuffled int4 byte layouts (see the module docstring)."""


def pack_int4(values: torch.Tensor) -> torch.Tensor:
    """uint8 [..., K // 2]: values int8 [..., K] two per byte, element 2j in the low nibble."""
    _check_values(values, "values")
    _check_range(values, "values")
    pairs = values.view(*values.shape[:-1], values.shape[-1] // 2, 2).to(torch.uint8) & 0xF
    return pairs[..., 0] | (pairs[..., 1] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """int8 [..., 2 * B]: the signed values of packed uint8 [..., B] (inverse of pack_int4)."""
    _check_packed(packed, "packed")
    nibbles = torch.stack((packed & 0xF, packed >> 4), dim=-1).to(torch.int8)
    return (nibbles - ((nibbles & 8) << 1)).flatten(-2)


def shuffle_int4(
    values: torch.Tensor,
    layout: str = "split_nibbles",
    *,
    experts: Iterable[int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The preshuffled packed bytes, uint8 [..., N, K // 2], of int4 values int8 [..., N, K].

    For [E, N, K] values, `experts` limits the work to those slabs (written into `out`, a
    fresh torch.empty by default), so only routed experts of a huge tensor are read."""
    _check_values(values, "values")
    _check_layout(layout)
    _check_shuffle_shape(tuple(values.shape), layout)
    shape = (*values.shape[:-1], values.shape[-1] // 2)
    if out is None:
        out = torch.empty(shape, dtype=torch.uint8, device=values.device)
    elif tuple(out.shape) != shape or out.dtype != torch.uint8:
        raise ValueError(
            f"out is {out.dtype} {tuple(out.shape)} but values {tuple(values.shape)} pack into "
            f"torch.uint8 {shape}; allocate it with torch.empty of that shape"
        )
    for index in _slabs(values, experts):
        slab = values[index]
        _check_range(slab, f"values[{index[0]}]" if values.dim() == 3 else "values")
        if layout == "split_nibbles":
            runs = preshuffle.shuffle_weight(slab).view(-1, 2, SPLIT_RUN // 2).to(torch.uint8) & 0xF
            out[index] = (runs[:, 0] | (runs[:, 1] << 4)).view(out[index].shape)
        else:
            out[index] = preshuffle.shuffle_weight(pack_int4(slab))
    return out


def unshuffle_int4(packed: torch.Tensor, layout: str = "split_nibbles") -> torch.Tensor:
    """int8 values [..., N, 2 * B] of preshuffled packed bytes uint8 [..., N, B]
    (the inverse of shuffle_int4)."""
    _check_packed(packed, "packed")
    _check_layout(layout)
    _check_shuffle_shape((*packed.shape[:-1], 2 * packed.shape[-1]), layout)
    if layout == "packed_16x16":
        return unpack_int4(preshuffle.unshuffle_weight(packed))
    nib = packed.contiguous().view(-1, SPLIT_RUN // 2)
    runs = torch.stack((nib & 0xF, nib >> 4), dim=1).to(torch.int8)
    signed = (runs - ((runs & 8) << 1)).view(*packed.shape[:-1], 2 * packed.shape[-1])
    return preshuffle.unshuffle_weight(signed)


def int4_offset(n: int, k: int, k_dim: int, layout: str = "split_nibbles") -> tuple[int, bool]:
    """Where value (n, k) of one [N, k_dim] slab sits in its preshuffled packed bytes:
    (byte offset from the slab's start, True if in the high nibble)."""
    _check_layout(layout)
    if layout == "packed_16x16":
        return preshuffle.element_offset(n, k // 2, k_dim // 2, 1), bool(k % 2)
    p = preshuffle.element_offset(n, k, k_dim, 1)
    run, i = divmod(p, SPLIT_RUN)
    return run * (SPLIT_RUN // 2) + i % (SPLIT_RUN // 2), i >= SPLIT_RUN // 2


def group_scales_for_kernel(
    scale: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Per-group scales [E, N, G] in the int4_bf16 kernels' layout: fp32 [E, G, N], or bf16
    [E, G // 2, N, 2] (groups 2i, 2i + 1 of a row side by side; G must be even)."""
    if scale.dim() != 3:
        raise ValueError(
            f"scale has shape {tuple(scale.shape)}; per-group scales are [E, N, K // group] "
            f"(quantize_per_group's scale)"
        )
    e, n, g = scale.shape
    if dtype == torch.float32:
        return scale.float().transpose(1, 2).contiguous()
    if dtype == torch.bfloat16 and g % 2 == 0:
        return scale.to(dtype).view(e, n, g // 2, 2).transpose(1, 2).contiguous()
    raise ValueError(
        f"group scales of shape {tuple(scale.shape)} cannot be laid out as {dtype}: use "
        f"torch.float32, or torch.bfloat16 with an even group count (K a multiple of 2 * group)"
    )


def group_scales_from_kernel(scale: torch.Tensor) -> torch.Tensor:
    """The inverse of group_scales_for_kernel: fp32 [E, N, G]."""
    if scale.dim() == 3:
        return scale.float().transpose(1, 2).contiguous()
    if scale.dim() == 4 and scale.shape[-1] == 2:
        e, half, n, _ = scale.shape
        return scale.float().transpose(1, 2).reshape(e, n, 2 * half)
    raise ValueError(
        f"scale has shape {tuple(scale.shape)}; kernel group scales are [E, G, N] (fp32) or "
        f"[E, G // 2, N, 2] (bf16), as group_scales_for_kernel returns"
    )


def _slabs(values: torch.Tensor, experts: Iterable[int] | None) -> list[tuple]:
    if values.dim() != 3:
        if experts is not None:
            raise ValueError(
                f"experts= needs [E, N, K] values, got shape {tuple(values.shape)}; drop "
                f"experts= or pass the whole expert tensor"
            )
        return [(...,)]
    e_count = values.shape[0]
    chosen = sorted({int(e) for e in (range(e_count) if experts is None else experts)})
    bad = [e for e in chosen if not 0 <= e < e_count]
    if bad:
        raise ValueError(f"experts {bad} are outside [0, {e_count}); pass expert ids of values")
    return [(e,) for e in chosen]


def _check_values(values: torch.Tensor, what: str) -> None:
    if values.dtype != torch.int8:
        raise ValueError(
            f"{what} is {values.dtype} of shape {tuple(values.shape)}; int4 values come one per "
            f"torch.int8 (quantize with fmt='int4' first)"
        )
    if values.dim() == 0 or values.shape[-1] % 2:
        raise ValueError(
            f"{what} has shape {tuple(values.shape)}: its K (last dim) must be even to pack two "
            f"int4 values per byte; pad K"
        )


def _check_range(values: torch.Tensor, what: str) -> None:
    """ValueError if values (one slab: a lazily filled tensor is checked where it is read)
    leave int4's range, which packing would silently wrap."""
    if values.numel() and not INT4_MIN <= int(values.min()) <= int(values.max()) <= INT4_MAX:
        raise ValueError(
            f"{what} of shape {tuple(values.shape)} hold values outside int4's "
            f"[{INT4_MIN}, {INT4_MAX}] (min {int(values.min())}, max {int(values.max())}); "
            f"quantize with fmt='int4' so they fit"
        )


def _check_packed(packed: torch.Tensor, what: str) -> None:
    if packed.dtype != torch.uint8 or packed.dim() == 0:
        raise ValueError(
            f"{what} is {packed.dtype} of shape {tuple(packed.shape)}; packed int4 is torch.uint8 "
            f"[..., K // 2] (as pack_int4 / shuffle_int4 return; .view(torch.uint8) an int8 copy)"
        )


def _check_layout(layout: str) -> None:
    if layout not in INT4_LAYOUTS:
        raise ValueError(f"layout={layout!r} is not an int4 layout; use one of {INT4_LAYOUTS}")


def _check_shuffle_shape(shape: tuple[int, ...], layout: str) -> None:
    """The values' shape [..., N, K] must tile into the layout's 16-row x K-block groups."""
    k_block = preshuffle.K_BLOCK * (2 if layout == "packed_16x16" else 1)
    if len(shape) < 2 or shape[-2] % preshuffle.ROWS or shape[-1] % k_block:
        raise ValueError(
            f"int4 values of shape {shape} cannot be preshuffled as {layout!r}: N (dim -2) must be "
            f"a multiple of {preshuffle.ROWS} and K (dim -1) a multiple of {k_block}; pad the weight"
        )
