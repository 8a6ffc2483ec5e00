"""The preshuffled weight layout the kernels consume: 16-row x 16-byte groups.

This is the layout of aiter's `shuffle_weight(w, (16, 16))`, which upstream's MoE kernels read.
For the last two dims [N, K] of a weight (N output rows, K the reduction dim) and E = the
element size in bytes:

    KPACK = 16 // E          elements in one 16-byte lane load
    KBLOCK = 32              elements of K per block (2 * 16)
    element (n, k) -> [n // 16][k // KBLOCK][(k % KBLOCK) // KPACK][n % 16][k % KPACK]

So one block (16 rows x KBLOCK elements) is 16 * KBLOCK * E contiguous bytes (1 KiB for
16-bit weights), and within it lane l of a wave reading 16 bytes at byte l * 16 gets row
l % 16, K elements [(l // 16) * KPACK, +KPACK): a whole wave's 16 B/lane load is contiguous.

A group of 16 rows is permuted within the bytes it already occupies, so any 16-row-aligned
slice [16 g, 16 h) of a shuffled tensor equals the shuffle of that slice alone. That keeps the
per-expert rebase exact (an expert's slab starts on a 16-row group) and lets lazily allocated
tensors be shuffled one filled row group at a time (`shuffle_rows_into`).
"""

from __future__ import annotations

import torch

ROWS = 16  # rows per group
LANE_BYTES = 16  # bytes per lane load
K_BLOCK = 32  # K elements per block (aiter: 2 * the layout's 16)


def k_pack(element_size: int) -> int:
    """K elements in one 16-byte lane load."""
    return LANE_BYTES // element_size


def check_shape(shape: tuple[int, ...], what: str = "weight") -> None:
    """ValueError unless the last two dims tile into 16-row x K_BLOCK groups."""
    if len(shape) < 2 or shape[-2] % ROWS or shape[-1] % K_BLOCK:
        raise ValueError(
            f"{what} of shape {tuple(shape)} cannot be preshuffled: its rows (dim -2) must be a "
            f"multiple of {ROWS} and its K (dim -1) a multiple of {K_BLOCK}; pad the weight"
        )


def _grouped_view(w: torch.Tensor) -> tuple[int, ...]:
    n, k = w.shape[-2], w.shape[-1]
    kp = k_pack(w.element_size())
    return (-1, n // ROWS, ROWS, k // K_BLOCK, K_BLOCK // kp, kp)


def shuffle_weight(w: torch.Tensor) -> torch.Tensor:
    """A new contiguous tensor of w's shape and dtype holding w in the preshuffled layout."""
    check_shape(tuple(w.shape))
    grouped = w.contiguous().view(_grouped_view(w))
    return grouped.permute(0, 1, 3, 4, 2, 5).contiguous().view(w.shape)


def unshuffle_weight(w: torch.Tensor) -> torch.Tensor:
    """The inverse of shuffle_weight: the plain row-major [.., N, K] weight."""
    check_shape(tuple(w.shape))
    n, k = w.shape[-2], w.shape[-1]
    kp = k_pack(w.element_size())
    shuffled = w.contiguous().view(-1, n // ROWS, k // K_BLOCK, K_BLOCK // kp, ROWS, kp)
    return shuffled.permute(0, 1, 4, 2, 3, 5).contiguous().view(w.shape)


def element_offset(n: int, k: int, k_dim: int, element_size: int) -> int:
    """Where logical element (n, k) of one [N, k_dim] slab sits in its preshuffled storage,
    in elements from the slab's start (the mapping the kernels' address arithmetic follows)."""
    kp = k_pack(element_size)
    return (
        (n // ROWS) * ROWS * k_dim
        + (k // K_BLOCK) * ROWS * K_BLOCK
        + ((k % K_BLOCK) // kp) * ROWS * kp
        + (n % ROWS) * kp
        + k % kp
    )


def shuffle_rows_into(dst: torch.Tensor, src: torch.Tensor, index: tuple, rows: range) -> None:
    """dst[index][rows] = the preshuffled src[index][rows], touching only those rows.

    `rows` must start and end on 16-row groups; `index` selects the [N, K] slab (e.g. (e,)).
    For lazily allocated (torch.empty) weights of which only some rows hold data."""
    if rows.start % ROWS or rows.stop % ROWS or rows.step != 1:
        raise ValueError(f"rows {rows} must be contiguous and aligned to {ROWS}-row groups")
    dst[index][rows.start : rows.stop] = shuffle_weight(src[index][rows.start : rows.stop])
