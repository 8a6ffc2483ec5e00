"""The `moegen verify` report: one table row per (variant, shape, arch) and a summary."""

from __future__ import annotations

from collections.abc import Sequence

from moegen.verify.plan import Outcome


def _addressing_cell(o: Outcome) -> str:
    declared = o.check.variant.addressing
    found = {a.addressing.value for a in o.audits}
    if not found:
        return f"- (declared {declared})"
    shown = ",".join(sorted(found))
    return shown if found == {declared} else f"{shown} != {declared} (declared)"


def _hazard_cell(o: Outcome) -> str:
    hazards = [h for a in o.audits for h in a.hazards]
    if not hazards:
        return "none" if o.audits else "-"
    counts = {
        "overflow": sum(h.can_overflow is True for h in hazards),
        "bounded": sum(h.can_overflow is False for h in hazards),
        "unknown": sum(h.can_overflow is None for h in hazards),
    }
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def _registers(o: Outcome) -> tuple[str, str, str, str]:
    ks = o.compiled.kernels
    if not ks:
        return ("-",) * 4

    def cell(values: list[int | None]) -> str:
        return "/".join("-" if x is None else str(x) for x in values)

    spills = [k.vgpr_spill_count + k.sgpr_spill_count + k.private_segment_size for k in ks]
    return (
        cell([k.vgpr_count for k in ks]),
        cell([k.sgpr_count for k in ks]),
        cell([k.agpr_count for k in ks]),
        cell(spills),
    )


def _compile_cell(o: Outcome) -> str:
    if o.compiled.cached:
        return "cached"
    secs = o.compiled.compile_s
    return "-" if secs is None else f"{secs:.2f}"


def format_table(outcomes: Sequence[Outcome]) -> str:
    """The summary table, one row per (variant, arch, shape); a tile column when the rows
    do not all share one tile."""
    with_tile = len({o.check.tile for o in outcomes}) > 1
    header = (
        "variant",
        "arch",
        "shape",
        *(("tile",) if with_tile else ()),
        "compile s",
        "addressing",
        "i32 widenings",
        "VGPR",
        "SGPR",
        "AGPR",
        "spills",
        "result",
    )
    rows = [header]
    for o in outcomes:
        rows.append(
            (
                o.check.variant.name,
                o.check.arch,
                o.check.shape_cell,
                *((o.check.tile,) if with_tile else ()),
                _compile_cell(o),
                _addressing_cell(o),
                _hazard_cell(o),
                *_registers(o),
                "ok" if o.ok else "FAIL",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def format_report(outcomes: Sequence[Outcome], wall_s: float) -> str:
    """The table, then every failure's problems and every warning, then the totals."""
    parts = [format_table(outcomes)]
    failed = [o for o in outcomes if not o.ok]
    for title, items in (
        ("failures", [(o, o.problems) for o in failed]),
        ("warnings", [(o, o.warnings) for o in outcomes if o.warnings]),
    ):
        if items:
            parts.append(f"\n{title}:")
            for o, messages in items:
                parts.append(
                    f"  {o.check.variant.name} [{o.check.arch}] at {o.check.describe_shape()}"
                )
                parts += [f"    - {m}" for m in messages]
    passed = len(outcomes) - len(failed)
    parts.append(f"\n{passed}/{len(outcomes)} passed, {len(failed)} failed; wall {wall_s:.1f} s")
    return "\n".join(parts)
