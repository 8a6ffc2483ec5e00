"""Spec -> [Variant]: defaults, matrix products minus `exclude:`, explicit entries, names.

`enumerate_variants` is the ONE enumeration that `moegen list`, `moegen render`, `verify` and the
tests share, so a listed variant and a written file can never disagree.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Iterable, Sequence

from moegen.backends import get_backend
from moegen.spec.checks import (
    _suggest,
    check_configs,
    check_keys,
    check_name,
    expect_bool,
    expect_choice,
    expect_int,
    expect_map,
    type_name,
)
from moegen.spec.errors import Location, SpecError
from moegen.spec.floors import check_floors, merge_floors
from moegen.spec.load import load_spec, raise_if
from moegen.spec.regimes import assign_regimes, identity, max_tokens_of, shape_problems, tile_of
from moegen.spec.naming import variant_name
from moegen.spec.located import LList, LMap
from moegen.spec.model import (
    ACCUMULATE_MODES,
    ADDRESSING_MODES,
    AXES,
    CONFIG_KEYS,
    BACKENDS,
    DEFAULT_BACKEND,
    STAGES,
    TILE_KEYS,
    TILE_MAP_KEYS,
    TORCH_DTYPES,
    VARIANT_KEYS,
    Source,
    Spec,
    TileRegime,
    Variant,
)

BUILTIN_DEFAULTS = {
    "archs": None,
    "tile": None,
    "doweight": False,
    "out_dtype": "float32",
    "accumulate": "atomic",
    "preferred": False,
    "backend": DEFAULT_BACKEND,
    "configs": None,
    "floors": None,
    "k_unroll": None,
}


class _Expander:
    def __init__(self, spec: Spec, errors: list[SpecError]):
        self.spec = spec
        self.errors = errors
        self._seen_msgs: set[tuple[Location, str]] = set()
        self.broken_defaults: set[str] = set()

    def error(self, loc: Location, message: str, hint: str = "") -> None:
        key = (loc, message)  # one report per declaration, not per matrix product
        if key not in self._seen_msgs:
            self._seen_msgs.add(key)
            self.errors.append(SpecError(loc, message, hint))

    # --- field values -----------------------------------------------------------------------
    def check_value(self, key: str, value: Any, loc: Location) -> bool:
        spec, errs = self.spec, self.errors
        if key == "dtype":
            if isinstance(value, Hashable) and value in spec.broken_dtypes:
                return False  # its own errors were reported where it is declared
            # A broken name may be a non-string key such as 16: shown as text, never suggested.
            names = set(spec.dtypes) | spec.broken_dtypes
            declared = sorted(map(str, names))
            words = [n for n in names if isinstance(n, str)]
            if isinstance(value, str) and value not in spec.dtypes:
                self.error(
                    loc,
                    f"dtype {value!r} is not declared under `dtypes:` "
                    f"(declared: {', '.join(declared) or 'none'})",
                    f"{_suggest(value, sorted(words))}declare it under `dtypes:` with its bits, "
                    "packing, torch dtype and MFMA per arch, or use a declared dtype",
                )
                return False
            return expect_choice(
                value, tuple(spec.dtypes) or ("<none declared>",), loc, "dtype", errs
            )
        if key == "addressing":
            return expect_choice(value, ADDRESSING_MODES, loc, "addressing", errs)
        if key == "backend":
            return expect_choice(value, BACKENDS, loc, "backend", errs)
        if key == "stage":
            return expect_choice(value, STAGES, loc, "stage", errs)
        if key == "split_k":
            return expect_int(value, loc, "split_k", errs)
        if key in ("doweight", "preferred"):
            return expect_bool(value, loc, key, errs)
        if key == "out_dtype":
            return expect_choice(value, tuple(TORCH_DTYPES), loc, "out_dtype", errs)
        if key == "accumulate":
            return expect_choice(value, ACCUMULATE_MODES, loc, "accumulate", errs)
        if key == "archs":
            if not isinstance(value, LList) or not value:
                self.error(
                    loc,
                    f"archs must be a non-empty list, not {type_name(value)}",
                    "write e.g. [gfx942, gfx950]",
                )
                return False
            ok = True
            for i, a in enumerate(value):
                ok &= expect_choice(
                    a,
                    tuple(spec.archs) or ("<none declared>",),
                    value.item_loc[i],
                    "arch",
                    errs,
                )
            if ok and len(set(value)) != len(value):
                self.error(loc, "archs lists an arch twice", "list each arch once")
                ok = False
            return ok
        if key == "configs":
            return check_configs(value, loc, errs)
        if key == "tile":
            if not expect_map(value, loc, "tile", errs):
                return False
            n0 = len(errs)
            check_keys(value, TILE_MAP_KEYS, "tile", errs)
            for k in TILE_KEYS + ("max_tokens",):
                if k in value:
                    expect_int(value[k], value.at(k), f"tile {k}", errs)
            if "floors" in value:
                check_floors(value["floors"], value.at("floors"), errs)
            return len(errs) == n0
        if key == "floors":
            return check_floors(value, loc, errs)
        if key == "k_unroll":
            if expect_int(value, loc, "k_unroll", errs) and value < 1:
                self.error(loc, f"k_unroll must be >= 1, got {value}", "write k_unroll: 1 (keep the K loop a loop)")
                return False
            return True
        raise AssertionError(key)

    def check_fields(self, m: LMap, keys: Iterable[str]) -> bool:
        ok = True
        for key in keys:
            if key in m:
                ok &= self.check_value(key, m[key], m.at(key))
        return ok

    # --- entries ----------------------------------------------------------------------------
    def defaults(self) -> dict[str, Any]:
        """The valid defaults; an invalid one is reported once and remembered as broken."""
        d = self.spec.defaults
        out = dict(BUILTIN_DEFAULTS)
        for key in VARIANT_KEYS:
            if key in d and not self.check_value(key, d[key], d.at(key)):
                self.broken_defaults.add(key)
        out.update({k: d[k] for k in d if k in VARIANT_KEYS and k not in self.broken_defaults})
        out["tile"] = None
        out["max_tokens"] = None
        if "tile" in d and "tile" not in self.broken_defaults:
            out["max_tokens"] = max_tokens_of(d["tile"], None)
            out["tile"] = tile_of(d["tile"], None)
            if out["tile"] is None:
                self.error(
                    d.at("tile"),
                    "defaults.tile must give m, n and k",
                    "write tile: {m: 16, n: 64, k: 64}",
                )
                self.broken_defaults.add("tile")
        return out

    def resolve(
        self,
        fields: dict[str, Any],
        defaults: dict[str, Any],
        loc: Location,
        src: Source,
        explicit_name: str | None,
        declared: LMap,
    ) -> Variant | None:
        spec = self.spec
        merged = dict(defaults)
        merged.update({k: v for k, v in fields.items() if k != "tile"})
        tile = tile_of(fields["tile"], defaults["tile"]) if "tile" in fields else defaults["tile"]
        max_tokens = max_tokens_of(fields.get("tile"), defaults["max_tokens"])
        missing = [k for k in ("dtype", "addressing", "stage") if merged.get(k) is None]
        if tile is None:
            missing.append("tile")
        if merged.get("archs") is None:
            missing.append("archs")
        if set(missing) & self.broken_defaults:
            return None  # the broken default was reported where it is written
        if missing:
            self.error(
                loc,
                f"variant does not say {', '.join(missing)}",
                "set them in the entry or under `defaults:`",
            )
            return None
        stage, split_k = merged["stage"], merged.get("split_k", 1)
        ok = True
        if stage == 2 and split_k != 1:
            self.error(
                loc,
                f"split_k={split_k} with stage 2: split-K exists only for stage 1",
                "use split_k: 1 for stage 2, or add `exclude: [{stage: 2, split_k: %d}]` to the matrix"
                % split_k,
            )
            ok = False
        dt = spec.dtypes[merged["dtype"]]
        backend = get_backend(merged["backend"])
        for arch in merged["archs"]:
            vendor = spec.archs[arch].vendor
            if vendor not in backend.vendors:
                self.error(
                    loc,
                    f"backend {backend.name!r} cannot target arch {arch!r} (vendor {vendor}; "
                    f"it targets {', '.join(backend.vendors)})",
                    f"drop {arch} from this variant's archs, or use a backend that targets {vendor}",
                )
                ok = False
                continue
            lacks = [
                s
                for s, table in (("mfma", dt.mfma), ("torch_dtype", dt.act_torch))
                if s in backend.dtype_tables and arch not in table
            ]
            if lacks:
                self.error(
                    loc,
                    f"dtype {dt.name!r} declares no {' or '.join(lacks)} for arch {arch!r}",
                    f"add dtypes.{dt.name}.{lacks[0]}.{arch}, or drop {arch} from this variant's archs",
                )
                ok = False
        doweight = merged["doweight"]
        if stage == 2:
            if "doweight" in declared and declared["doweight"] is False and src.kind == "variant":
                self.error(
                    declared.at("doweight"),
                    "stage 2 always multiplies by the routing weight",
                    "remove `doweight: false` from this stage-2 entry",
                )
                ok = False
            doweight = True
        out_dtype = merged["out_dtype"]
        accumulate = merged["accumulate"]
        if stage == 1 and accumulate != "atomic":
            where = declared.at("accumulate") if "accumulate" in declared else loc
            self.error(
                where,
                f"accumulate: {accumulate} with stage 1: only stage 2 sums topk slots",
                "set accumulate only on stage-2 variants",
            )
            ok = False
        if stage == 2 and accumulate == "atomic":
            for arch in merged["archs"]:
                if out_dtype not in spec.archs[arch].atomics:
                    self.error(
                        loc,
                        f"stage-2 out_dtype {out_dtype} has no atomic add on {arch} "
                        f"(archs.{arch}.atomics: {', '.join(spec.archs[arch].atomics)})",
                        "use out_dtype: float32, or accumulate: reduce (plain stores and a topk sum), or drop the arch",
                    )
                    ok = False
        configs = merged["configs"]
        if configs is not None and not backend.tile_configs:
            self.error(
                loc,
                f"backend {backend.name!r} takes no `configs:` (its tile is `tile:`)",
                "remove configs, or set backend to one that takes tile regimes",
            )
            ok = False
        if configs is None and backend.tile_configs:
            self.error(
                loc,
                f"backend {backend.name!r} needs `configs:`, its tile regimes by token count",
                "add configs: [{tokens: 64, m: 16, n: 64, k: 128, warps: 4, stages: 4}, ...]",
            )
            ok = False
        if not ok:
            return None
        name = explicit_name or variant_name(
            stage=stage,
            dtype=dt.name,
            addressing=merged["addressing"],
            split_k=split_k,
            tile=tile,
            doweight=doweight,
            out_dtype=out_dtype,
            default_tile=defaults["tile"],
            default_out=defaults["out_dtype"],
            accumulate=accumulate,
            backend=merged["backend"],
            default_backend=defaults["backend"],
        )
        v = Variant(
            name=name,
            dtype=dt.for_archs(merged["archs"]),
            addressing=merged["addressing"],
            stage=stage,
            split_k=split_k,
            tile_m=tile[0],
            tile_n=tile[1],
            tile_k=tile[2],
            archs=tuple(merged["archs"]),
            doweight=doweight,
            out_dtype=out_dtype,
            preferred=merged["preferred"],
            source=src,
            shapes=spec.shapes,
            max_tokens=max_tokens,
            accumulate=accumulate,
            backend=merged["backend"],
            configs=tuple(TileRegime(*(c[k] for k in CONFIG_KEYS)) for c in (configs or ())),
            arch_vendors={a: spec.archs[a].vendor for a in merged["archs"]},
            k_unroll=merged["k_unroll"],
            floors=merge_floors(
                dict(merge_floors(defaults["floors"], fields.get("floors"))),
                fields["tile"].get("floors") if isinstance(fields.get("tile"), LMap) else None,
            ),
        )
        for problem in backend.check_tiles(v):
            self.error(loc, f"{name}: {problem}", "change the tile in variants.yaml")
            ok = False
        for shape in spec.shapes:
            for problem in shape_problems(v, shape):
                self.error(
                    loc,
                    f"{name}: {problem} (shape {shape.name!r})",
                    "pick a tile / split_k that divides the shape, or change the shape",
                )
                ok = False
        return v if ok else None

    def matrix_block(self, i: int, block: Any, loc: Location, defaults: dict) -> list[Variant]:
        if not expect_map(block, loc, "a matrix block", self.errors):
            return []
        n0 = len(self.errors)
        check_keys(block, VARIANT_KEYS + ("exclude",), "a matrix block", self.errors)
        axes: dict[str, list] = {}
        valid = True
        for key in VARIANT_KEYS:
            if key not in block:
                continue
            value = block[key]
            if key in AXES + ("tile",) and isinstance(value, LList):
                if not value:
                    self.error(
                        block.at(key),
                        f"axis {key} is an empty list",
                        f"list at least one {key}",
                    )
                for j, item in enumerate(value):
                    valid &= self.check_value(key, item, value.item_loc[j])
                if len(set(map(identity, value))) != len(value):
                    self.error(
                        block.at(key),
                        f"axis {key} lists a value twice",
                        "list each value once",
                    )
                axes[key] = list(value)
            else:
                valid &= self.check_value(key, value, block.at(key))
        excludes = block.get("exclude", LList())
        if not isinstance(excludes, LList):
            self.error(
                block.at("exclude"),
                f"exclude must be a list of partial variants, not {type_name(excludes)}",
                "write exclude: [{stage: 2, split_k: 2}]",
            )
            excludes = LList()
            excludes.item_loc = []
        rules = []
        for j, rule in enumerate(excludes):
            rloc = excludes.item_loc[j]
            if not expect_map(rule, rloc, "an exclude rule", self.errors):
                continue
            check_keys(rule, AXES, "an exclude rule", self.errors)
            for key in rule:
                if key not in AXES:
                    continue  # reported by check_keys
                self.check_value(key, rule[key], rule.at(key))
                if key not in axes and key not in block:
                    self.error(
                        rule.key_loc[key],
                        f"exclude rule names {key!r}, which this block does not set",
                        f"add a {key} axis to the block or remove the key from the rule",
                    )
            rules.append((rule, rloc))
        if len(self.errors) > n0 or not valid:
            return []
        names = list(axes)
        combos = []
        used = [False] * len(rules)
        for values in itertools.product(*(axes[n] for n in names)):
            fields = {k: block[k] for k in block if k not in axes and k != "exclude"}
            fields.update(zip(names, values))
            hit = [all(fields.get(k) == r[k] for k in r) for r, _ in rules]
            for j, h in enumerate(hit):
                used[j] |= h
            if not any(hit):
                combos.append(fields)
        for j, (_, rloc) in enumerate(rules):
            if not used[j]:
                self.error(
                    rloc,
                    "this exclude rule matches no combination of the block's axes",
                    "fix the rule's values or remove it",
                )
        if not combos:
            self.error(
                loc,
                "every combination of this matrix block is excluded",
                "remove the block or an exclude rule",
            )
        src = Source(loc, "matrix", i)
        out = [self.resolve(f, defaults, loc, src, None, block) for f in combos]
        return [v for v in out if v is not None]

    def explicit(self, i: int, entry: Any, loc: Location, defaults: dict) -> Variant | None:
        if not expect_map(entry, loc, "a variants entry", self.errors):
            return None
        n0 = len(self.errors)
        check_keys(entry, VARIANT_KEYS + ("name",), "a variants entry", self.errors)
        valid = self.check_fields(entry, VARIANT_KEYS)
        name = entry.get("name")
        if "name" in entry:
            check_name(name, entry.at("name"), "variant name", self.errors)
        if len(self.errors) > n0 or not valid:
            return None
        fields = {k: entry[k] for k in entry if k in VARIANT_KEYS}
        return self.resolve(fields, defaults, loc, Source(loc, "variant", i), name, entry)


def expand(spec: Spec, errors: list[SpecError]) -> list[Variant]:
    """All variants of the spec, sorted by name; problems (incl. duplicate names) go to `errors`."""
    ex = _Expander(spec, errors)
    defaults = ex.defaults()
    found: list[Variant] = []
    for i, block in enumerate(spec.matrix):
        found += ex.matrix_block(i, block, spec.matrix.item_loc[i], defaults)
    for i, entry in enumerate(spec.variants):
        v = ex.explicit(i, entry, spec.variants.item_loc[i], defaults)
        if v is not None:
            found.append(v)
    by_name: dict[str, Variant] = {}
    for v in found:
        first = by_name.get(v.name)
        if first is None:
            by_name[v.name] = v
        else:
            ex.error(
                v.source.loc,
                f"duplicate variant {v.name!r} (also declared at line {first.source.loc.line})",
                "remove one declaration, or exclude it from the matrix",
            )
    return assign_regimes([by_name[n] for n in sorted(by_name)], ex.error)


def enumerate_variants(variants_path: str | Path, patterns: Sequence[str] = ()) -> list[Variant]:
    """Load, validate and expand; keep the variants matching any fnmatch glob (all if none).

    Raises SpecErrors with every problem found.
    """
    errors: list[SpecError] = []
    spec = load_spec(variants_path, errors)
    variants = expand(spec, errors) if spec is not None else []
    raise_if(errors)
    return select(variants, patterns)


def select(variants: Sequence[Variant], patterns: Sequence[str]) -> list[Variant]:
    if not patterns:
        return list(variants)
    return [v for v in variants if any(fnmatch.fnmatchcase(v.name, p) for p in patterns)]
