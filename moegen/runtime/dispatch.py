"""Safe dispatch: pick the declared variant that can address the actual tensors.

The generated registry (generated/__init__.py) lists every variant with the parameters dispatch
filters on; `select` tries the candidates for a (dtype, stage, split-K) -- the YAML's preferred
ones first -- and returns the first whose 32-bit offsets reach every byte (address model). When
none can, the error lists each candidate with its reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Sequence

from moegen.core import address_model


@dataclass(frozen=True)
class RegisteredVariant:
    """One generated variant, as the registry lists it (no kernel import needed to filter)."""

    name: str
    module: str
    dtype: str
    stage: int
    split_k: int
    addressing: str
    preferred: bool
    # Tiles per regime: the token counts this variant's tile serves (max None: no bound).
    min_tokens: int = 1
    max_tokens: int | None = None

    def serves(self, tokens: int) -> bool:
        return self.min_tokens <= tokens and (self.max_tokens is None or tokens <= self.max_tokens)

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def variant(self) -> dict:
        """The module's VARIANT: its resolved parameters, which the address model reads."""
        return self.load().VARIANT


class NoAddressableVariant(ValueError):
    """No declared variant can address the tensors; the message says why for each candidate."""


def problem_of(stage: int, act_shape: Sequence[int], w_shape: Sequence[int], topk: int) -> dict:
    """Problem dims from the shapes: stage 1 x [tokens, model_dim], w1 [E, 2*inter, model_dim];
    stage 2 a2 [tokens*topk, inter], w2 [E, model_dim, inter]."""
    if len(act_shape) != 2 or len(w_shape) != 3:
        raise ValueError(
            f"expected a 2-D activation and a 3-D weight, got {list(act_shape)} and {list(w_shape)}"
        )
    if stage == 1:
        return dict(
            experts=w_shape[0],
            model_dim=w_shape[2],
            inter=w_shape[1] // 2,
            tokens=act_shape[0],
            topk=topk,
        )
    return dict(
        experts=w_shape[0],
        model_dim=w_shape[1],
        inter=w_shape[2],
        tokens=act_shape[0] // topk,
        topk=topk,
    )


def candidates(
    entries: Sequence[RegisteredVariant],
    *,
    dtype: str,
    stage: int,
    split_k: int,
    tokens: int | None = None,
) -> list[RegisteredVariant]:
    """The matching entries whose tile serves `tokens` (all tiles when None), preferred first,
    then by name (deterministic)."""
    found = [
        e
        for e in entries
        if (e.dtype, e.stage, e.split_k) == (dtype, stage, split_k)
        and (tokens is None or e.serves(tokens))
    ]
    return sorted(found, key=lambda e: (not e.preferred, e.name))


def select(
    entries: Sequence[RegisteredVariant],
    *,
    dtype: str,
    stage: int,
    split_k: int = 1,
    experts: int,
    model_dim: int,
    inter: int,
    tokens: int,
    topk: int,
) -> RegisteredVariant:
    """The first candidate (preferred first) whose tile serves `tokens` and that can address
    this problem."""
    cands = candidates(entries, dtype=dtype, stage=stage, split_k=split_k, tokens=tokens)
    what = f"dtype={dtype} stage={stage} split_k={split_k}"
    if not cands and candidates(entries, dtype=dtype, stage=stage, split_k=split_k):
        raise NoAddressableVariant(
            f"no tile of the variants with {what} serves {tokens} tokens; give the largest tile "
            "of each family no max_tokens in variants.yaml and run `moegen render`."
        )
    if not cands:
        declared = sorted({(e.dtype, e.stage, e.split_k) for e in entries})
        raise NoAddressableVariant(
            f"no variant in variants.yaml has {what}; declared (dtype, stage, split_k): {declared}. "
            "Add one to variants.yaml and run `moegen render`."
        )
    reasons = []
    for e in cands:
        problems = address_model.check(
            e.variant, experts=experts, model_dim=model_dim, inter=inter, tokens=tokens, topk=topk
        )
        if not problems:
            return e
        reasons.append(
            f"  - {e.name}"
            + ("" if not e.preferred else " (preferred)")
            + ": "
            + " ".join(problems)
        )
    shape = f"E={experts} model_dim={model_dim} inter={inter} tokens={tokens} topk={topk}"
    raise NoAddressableVariant(
        f"no declared variant with {what} can address {shape}; tried:\n" + "\n".join(reasons)
    )
