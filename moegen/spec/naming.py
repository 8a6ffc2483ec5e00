"""Variant names: a pure function of a variant's parameters (file names and registry keys
derive from them in moegen.spec.model)."""

from __future__ import annotations

from moegen.core.vocabulary import DEFAULT_BACKEND


def variant_name(
    *,
    stage: int,
    dtype: str,
    addressing: str,
    split_k: int,
    tile: tuple[int, int, int],
    doweight: bool,
    out_dtype: str,
    default_tile: tuple[int, int, int] | None,
    default_out: str,
    backend: str = DEFAULT_BACKEND,
    default_backend: str = DEFAULT_BACKEND,
    accumulate: str = "atomic",
) -> str:
    """A readable identifier that is a pure function of the variant's parameters.

    Parameters equal to the spec's defaults are left out, so the common case reads
    `moe_s1_bf16_per_expert`; split-K over n slices adds `_splitk<n>` (stage 1 only), a
    non-default tile `_t32x128x64`, a stage-1 routing-weight multiply `_w`, a non-default
    stage-2 output dtype `_out_bfloat16`, stage 2's reduce mode `_reduce`, a backend other
    than the default one `_triton`.
    """
    parts = [f"moe_s{stage}", dtype, addressing]
    if stage == 1 and split_k != 1:
        parts.append(f"splitk{split_k}")
    if tile != default_tile:
        parts.append("t{}x{}x{}".format(*tile))
    if stage == 1 and doweight:
        parts.append("w")
    if stage == 2 and out_dtype != default_out:
        parts.append(f"out_{out_dtype}")
    if stage == 2 and accumulate != "atomic":
        parts.append(accumulate)
    if backend != default_backend:
        parts.append(backend)
    return "_".join(parts)
