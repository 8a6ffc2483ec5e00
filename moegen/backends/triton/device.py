"""Device helpers the generated Triton kernel modules import (with moegen.runtime, the only
moegen module they may import).

Two things live here: the @triton.jit pieces every kernel shares (routing decode, SiLU) and
the host-side decisions about how a launch runs (the tile config of a token count, the grid,
the interpreter's bf16 workaround).

The interpreter defect: in Triton's CPU interpreter (TRITON_INTERPRET=1, checked on 3.6.0),
tl.dot of two bfloat16 blocks returns garbage (errors of 1e10 on N(0, 1) data) while float16
and float32 are right. Kernels therefore take a DOT_UPCAST constexpr: the host sets it when
the interpreter runs a bfloat16 kernel, and the kernel converts both operands to float32 before
tl.dot (exact products of bf16 values, float32 accumulation as on the GPU). On a GPU it is
always False and the compiled kernel is the plain bf16 one.
tests/test_triton_backend.py shows both the defect and the workaround.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import triton
import triton.language as tl

from moegen.core.vocabulary import ROUTING_BYTES, TOKEN_BITS  # noqa: F401  (kernels' constants)

#: the dtypes whose tl.dot the interpreter gets wrong (see the module docstring)
INTERPRETER_BAD_DOT_DTYPES = ("bfloat16",)


@dataclass(frozen=True)
class TileConfig:
    """One regime's tile: BLOCK_M (= the routing block size), BLOCK_N, BLOCK_K, warps and
    software-pipeline stages; used for token counts <= max_tokens (None: every larger count)."""

    max_tokens: int | None
    block_m: int
    block_n: int
    block_k: int
    warps: int
    stages: int


def config_for(configs: Sequence[TileConfig], tokens: int) -> TileConfig:
    """The config of the first regime whose max_tokens covers `tokens` (the last covers all)."""
    for cfg in configs:
        if cfg.max_tokens is None or tokens <= cfg.max_tokens:
            return cfg
    return configs[-1]


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def dot_upcast(torch_dtype: str) -> bool:
    """Whether a kernel on `torch_dtype` operands must upcast them before tl.dot (interpreter
    only; see the module docstring)."""
    return interpreting() and torch_dtype in INTERPRETER_BAD_DOT_DTYPES


def n_step(n_blocks: int, only_edges: bool) -> tuple[int, int]:
    """(grid x, stride of program_id(0) in N-blocks): every N-block, or only the first and the
    last (the interpreter's large points run just the edge blocks the test checks)."""
    if only_edges and n_blocks > 2:
        return 2, n_blocks - 1
    return n_blocks, 1


@triton.jit
def silu(x):
    """x * sigmoid(x) in float32."""
    return x / (1.0 + tl.exp(-x))


@triton.jit
def routed_rows(SortedTokenIds, pid_m, tokens, BLOCK_M: tl.constexpr):
    """The sorted rows of M-block pid_m: (token, topk slot, is a routed row, row indices).

    moe_sorting packs each row as (slot << TOKEN_BITS) | token; padding rows hold
    token == tokens and are neither read nor stored."""
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    packed = tl.load(SortedTokenIds + rows)
    token = packed & ((1 << 24) - 1)
    slot = packed >> 24
    return token, slot, token < tokens, rows
