"""Tiles and their regimes: reading a tile map, the token counts each tile of a family serves
(tiles per regime), and the problem shapes a tile must divide. Used by moegen.spec.expand."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from moegen.spec.errors import Location
from moegen.spec.located import LMap
from moegen.spec.model import TILE_KEYS, Variant

ErrorSink = Callable[[Location, str, str], None]


def max_tokens_of(value: Any, base: int | None) -> int | None:
    """A tile map's `max_tokens` (the default tile's when it gives none)."""
    if isinstance(value, LMap) and "max_tokens" in value:
        return value["max_tokens"]
    return base


def tile_of(value: LMap, base: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    if base is None and not all(k in value for k in TILE_KEYS):
        return None
    b = dict(zip(TILE_KEYS, base or (0, 0, 0)))
    b.update({k: value[k] for k in TILE_KEYS if k in value})
    return (b["m"], b["n"], b["k"])


def identity(value: Any) -> str:
    """A hashable identity of an axis value (a tile map compares by its items)."""
    if isinstance(value, LMap):
        return repr(sorted((str(k), value[k]) for k in value))
    return repr(value)


def assign_regimes(variants: list[Variant], error: ErrorSink) -> list[Variant]:
    """Give each variant the token counts its tile serves, within its family (the variants that
    differ only in their tile). Tiles are ordered by `max_tokens`; each serves from the previous
    tile's max_tokens + 1; exactly one tile of a family has no max_tokens (it serves the rest).
    A family where no tile gives max_tokens keeps every tile for every token count.

    A matrix block's tile list makes many families at once: each problem is reported once per
    declaration, naming the families it affects."""
    families: dict[tuple, list[Variant]] = {}
    for v in variants:
        families.setdefault(v.family, []).append(v)
    problems: dict[tuple[Location, str], list[str]] = {}
    out: dict[str, Variant] = {}
    for members in families.values():
        bounded = sorted((v for v in members if v.max_tokens is not None), key=lambda v: v.max_tokens)
        open_ended = [v for v in members if v.max_tokens is None]
        if not bounded:
            # No tile of the family declares a regime: each serves every token count, and
            # dispatch takes them in (preferred, name) order.
            out.update((v.name, v) for v in members)
            continue
        found = []
        if not open_ended:
            found.append(f"no tile serves more than {bounded[-1].max_tokens} tokens")
        elif len(open_ended) > 1:
            found.append(
                f"{len(open_ended)} tiles have no max_tokens, so dispatch cannot choose between them"
            )
        for a, b in zip(bounded, bounded[1:]):
            if a.max_tokens == b.max_tokens:
                found.append(f"two tiles both serve up to max_tokens={a.max_tokens}")
        for what in found:
            problems.setdefault((members[0].source.loc, what), []).append(
                ", ".join(v.name for v in members)
            )
        if found:
            continue
        low = 1
        for v in bounded + open_ended:
            out[v.name] = dataclasses.replace(v, min_tokens=low)
            low = (v.max_tokens or 0) + 1
    for (loc, what), fams in problems.items():
        shown = "; ".join(f"[{f}]" for f in fams[:2]) + ("; ..." if len(fams) > 2 else "")
        error(
            loc,
            f"tiles per regime: {what} ({len(fams)} famil{'y' if len(fams) == 1 else 'ies'} "
            f"of variants that differ only in their tile: {shown})",
            "give each tile but the largest a different max_tokens (the token counts it serves "
            "up to), and the largest none",
        )
    return [out[v.name] for v in variants if v.name in out]


def shape_problems(v: Variant, shape) -> list[str]:
    """Dims of `shape` the variant's tiles / split_k do not divide."""
    problems = []
    if v.stage == 1:
        n_dim, n_what, k_dim, k_what = (
            shape.inter,
            "inter",
            shape.model_dim,
            "model_dim",
        )
    else:
        n_dim, n_what, k_dim, k_what = (
            shape.model_dim,
            "model_dim",
            shape.inter,
            "inter",
        )
    if n_dim % v.tile_n:
        problems.append(f"tile n={v.tile_n} does not divide {n_what}={n_dim}")
    if k_dim % (v.split_k * v.tile_k):
        problems.append(
            f"split_k x tile k = {v.split_k} x {v.tile_k} does not divide {k_what}={k_dim}"
        )
    return problems
