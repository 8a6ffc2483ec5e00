"""Sweep points: the shapes each variant's generated boundary test runs, decided at render time
from the address model (moegen.core.address_model) and rendered as literals.

A variant is swept across the 4 GiB line of a whole-tensor weight of its dtype and stage (safe,
last inter below, first above, production) and, when per_expert, across its own slab's line at
E=2; at the token counts of its own regime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moegen.core.address_model import (
    Problem,
    addressable,
    first_failing_inter,
    inter_granule,
    spans,
    storage_bytes,
)


@dataclass(frozen=True)
class SweepPoint:
    label: str  # "safe", "below", "above", "production"
    inter: int
    addressable: bool
    weight_bytes: int


def sweep(
    v: Mapping[str, Any],
    experts: int,
    model_dim: int,
    tokens: int,
    topk: int,
    production_inter: int,
    line: int | None = None,
) -> list[SweepPoint]:
    """The inter values a boundary test runs: a safe small one, the last multiple of the tile
    granule below the line, the first above it, and production. `line` defaults to this
    variant's own first failing inter."""
    g = inter_granule(v)
    fail = line if line is not None else first_failing_inter(v, experts, model_dim, tokens, topk)
    below = max(g, (fail - 1) // g * g)
    above = -(-fail // g) * g
    safe = min(384 // g * g or g, below)
    points = [
        ("safe", safe),
        ("below", below),
        ("above", above),
        ("production", production_inter),
    ]
    out = []
    for label, inter in points:
        p = Problem(experts, model_dim, inter, tokens, topk)
        w = next(
            s
            for s in spans(v, Problem(experts, model_dim, inter, tokens, topk))
            if s.tensor in ("w1", "w2")
        )
        out.append(
            SweepPoint(
                label,
                inter,
                addressable(v, p),
                storage_bytes(experts * w.shape[1] * w.shape[2], v["weight_bits"]),
            )
        )
    return out


TOKEN_COUNTS = {"decode": 16, "prefill": 2048}  # the seed's token counts
OWN_LINE_EXPERTS = 2  # a per-expert line is one slab's: E does not move it, so test it at E=2


@dataclass(frozen=True)
class BoundaryCase:
    """One (inter, token count) point of a variant's boundary sweep."""

    label: str  # safe | below | above | production | own_below | own_above
    inter: int
    experts: int
    topk: int
    tokens_label: str  # decode | prefill
    tokens: int
    addressable: bool
    weight_bytes: int = 0  # the whole weight tensor, for reports

    @property
    def slow(self) -> bool:
        """An own-line case at the prefill token count: marked slow, outside CI (`-m "not slow"`).
        Past its own line a stage-2 slab is 4 GiB of K (inter ~350k-1.4M), and even the one
        emulated workgroup of a 128-row tile takes 65-103 s per case on the CI machine. The
        decode count's own-line case of the same dtype, stage and addressing runs the same
        per-expert rebase (the template's address code does not depend on the tile) and stays
        in CI, with every prefill tile's seed-line cases; `moegen verify` audits each tile."""
        return self.label.startswith("own_") and self.tokens_label == "prefill"

    @property
    def id(self) -> str:
        parts = [f"inter={self.inter}"]
        if self.label.startswith("own_"):
            parts.append(f"E={self.experts}")
        parts.append(self.tokens_label)
        return "-".join(parts)


def regime_token_counts(
    v: Mapping[str, Any], token_counts: Mapping[str, int] = TOKEN_COUNTS
) -> dict[str, int]:
    """The token counts of `token_counts` inside the variant's regime (its tile serves
    min_tokens..max_tokens; auto-dispatch never gives it other counts), or, when none falls
    inside, the one nearest to it. A variant without a regime gets them all."""
    low, high = v.get("min_tokens") or 1, v.get("max_tokens")
    inside = {k: t for k, t in token_counts.items() if t >= low and (high is None or t <= high)}
    if inside:
        return inside

    def distance(t: int) -> int:
        return low - t if t < low else t - high

    label = min(token_counts, key=lambda k: distance(token_counts[k]))
    return {label: token_counts[label]}


def boundary_cases(
    v: Mapping[str, Any],
    *,
    experts: int,
    model_dim: int,
    topk: int,
    production_inter: int,
    token_counts: Mapping[str, int] = TOKEN_COUNTS,
) -> list[BoundaryCase]:
    """The sweep a variant's generated boundary test runs, decided here, rendered as literals.

    Every variant is swept across the 4 GiB line of a whole-tensor weight of its dtype and
    stage (the seed's line: safe, last inter below, first above, production), at the token
    counts of its own regime (a decode tile at decode, a prefill tile at prefill). A per_expert
    variant's own line is one expert's slab reaching 2**32 bytes; it is swept there too, at
    E=2 (the slab line does not depend on E, and 2 lazily allocated experts stay virtual).
    """
    token_counts = regime_token_counts(v, token_counts)
    whole = dict(v, addressing="whole_tensor")
    points = [
        (p.label, p.inter, experts, topk)
        for p in sweep(
            whole, experts, model_dim, max(token_counts.values()), topk, production_inter
        )
    ]
    if v["addressing"] == "per_expert":
        own_topk = min(topk, OWN_LINE_EXPERTS)
        own = sweep(
            v, OWN_LINE_EXPERTS, model_dim, min(token_counts.values()), own_topk, production_inter
        )
        points += [
            (f"own_{p.label}", p.inter, OWN_LINE_EXPERTS, own_topk)
            for p in own
            if p.label in ("below", "above")
        ]
    cases = []
    for label, inter, e, k in points:
        for tlabel, tokens in token_counts.items():
            p = Problem(e, model_dim, inter, tokens, k)
            w = next(s for s in spans(v, p) if s.tensor in ("w1", "w2"))
            cases.append(
                BoundaryCase(
                    label,
                    inter,
                    e,
                    k,
                    tlabel,
                    tokens,
                    addressable(v, p),
                    storage_bytes(e * w.shape[1] * w.shape[2], v["weight_bits"]),
                )
            )
    return cases
