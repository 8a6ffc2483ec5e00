"""`floors:` in variants.yaml: the ISA counters a variant promises (checked by `moegen verify`
at the production shape).

A `floors:` mapping may sit under `defaults:`, in a matrix block or in an explicit entry; an
entry's floors are merged key by key over the defaults' (the entry wins). Each key names a
counter of moegen.verify.counters and bounds it one way (moegen.core.vocabulary.FLOORS):

    floors: {kib_in_flight: 6, mfma_per_load: 1.5, weight_load_bytes_per_lane: 16,
             waves_per_simd: 4, drains_in_loop: 0, spills: 0}
"""

from __future__ import annotations

from typing import Any, Mapping

from moegen.core.vocabulary import FLOORS
from moegen.spec.checks import check_keys, expect_map, type_name
from moegen.spec.errors import Location, SpecError

FLOOR_KEYS = tuple(FLOORS)


def check_floors(value: Any, loc: Location, errors: list[SpecError]) -> bool:
    """Report an invalid `floors:` mapping (unknown keys, values that are not numbers >= 0)."""
    if not expect_map(value, loc, "floors", errors):
        return False
    n0 = len(errors)
    check_keys(value, FLOOR_KEYS, "floors", errors)
    for key in FLOOR_KEYS:
        if key not in value:
            continue
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            way = "at least" if FLOORS[key] == "min" else "at most"
            errors.append(
                SpecError(
                    value.at(key),
                    f"floors.{key} must be a number >= 0, not {type_name(v)} ({v!r})",
                    f"write e.g. {key}: {'1.5' if FLOORS[key] == 'min' else '0'} "
                    f"(the counter must be {way} this)",
                )
            )
    return len(errors) == n0


def merge_floors(
    default: Mapping[str, float] | None, entry: Mapping[str, float] | None
) -> tuple[tuple[str, float], ...]:
    """The floors of one variant: the entry's over the defaults', key by key, in FLOORS order."""
    merged = dict(default or {})
    merged.update(entry or {})
    return tuple((k, merged[k]) for k in FLOOR_KEYS if k in merged)
