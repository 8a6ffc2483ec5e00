"""Load variants.yaml into a structurally validated Spec: every section, every problem with its
file:line:col, all reported in one run."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from moegen.core.vocabulary import SCALE_DTYPE_BITS
from moegen.spec.checks import (
    _not_a_string,
    _quote_hint,
    _suggest,
    check_keys,
    check_name,
    expect_choice,
    expect_int,
    expect_map,
    expect_str,
    type_name,
)
from moegen.spec.errors import Location, SpecError, SpecErrors
from moegen.spec.located import LList, LMap, load
from moegen.spec.model import (
    ARCH_KEYS,
    DEFAULT_VENDOR,
    VENDORS,
    DTYPE_KEYS,
    DTYPE_REQUIRED_KEYS,
    ACCUMULATORS,
    ACTIVATION_ROWS,
    MFMA_KEYS,
    REQUIRED_SHAPES,
    SCALE_APPLIED,
    SCALE_KEYS,
    SCALE_KINDS,
    SCALE_REQUIRED_KEYS,
    TEMPLATE_ACCUMULATORS,
    TEMPLATE_SCALES,
    SHAPE_KEYS,
    TOP_KEYS,
    TORCH_DTYPE_KEYS,
    TORCH_DTYPES,
    VARIANT_KEYS,
    WEIGHT_BITS,
    WEIGHT_LAYOUTS,
    Arch,
    DType,
    Mfma,
    Scale,
    Shape,
    Spec,
)

# ---------------------------------------------------------------------------------------------
# sections


def _load_archs(m: LMap, errors: list[SpecError]) -> dict[str, Arch]:
    archs: dict[str, Arch] = {}
    for name, body in m.items():
        loc = m.key_loc[name]
        if not check_name(name, loc, "arch", errors) or not expect_map(
            body, m.at(name), f"arch {name}", errors
        ):
            continue
        check_keys(body, ARCH_KEYS, f"arch {name!r}", errors, required=("atomics",))
        vendor = body.get("vendor", DEFAULT_VENDOR)
        if "vendor" in body and not expect_choice(
            vendor, VENDORS, body.at("vendor"), f"arch {name!r}: vendor", errors
        ):
            continue
        atomics = body.get("atomics", [])
        ok = isinstance(atomics, LList)
        if not ok:
            errors.append(
                SpecError(
                    body.at("atomics"),
                    "atomics must be a list of torch dtype names",
                    "write e.g. [float32]",
                )
            )
        else:
            for i, a in enumerate(atomics):
                ok &= expect_choice(
                    a, tuple(TORCH_DTYPES), atomics.item_loc[i], "atomic dtype", errors
                )
        if ok:
            archs[name] = Arch(name, tuple(atomics), vendor)
    return archs


def _check_dtype_storage(what: str, body: LMap, errors: list[SpecError]) -> None:
    """The element types, bit widths, packing and scale kinds present in one dtype entry."""
    for key in ("activation", "weight"):
        if key in body:
            expect_str(body[key], body.at(key), f"{what}: {key}", errors)
    for key, choices in (("activation_bits", (8, 16)), ("weight_bits", WEIGHT_BITS)):
        if key in body:
            expect_choice(body[key], choices, body.at(key), f"{what}: {key}", errors)
    if "packing" in body and expect_int(
        body["packing"], body.at("packing"), f"{what}: packing", errors
    ):
        bits = body.get("weight_bits")
        if bits in WEIGHT_BITS and bits * body["packing"] not in (8, 16, 32):
            errors.append(
                SpecError(
                    body.at("packing"),
                    f"{what}: {body['packing']} values of {bits} bits do not fill "
                    "a whole 8/16/32-bit storage element",
                    "int4 packs 2 per byte: weight_bits 4, packing 2",
                )
            )
    if "weight_layout" in body and expect_choice(
        body["weight_layout"], WEIGHT_LAYOUTS, body.at("weight_layout"), f"{what}: weight_layout", errors
    ) and body["weight_layout"] != WEIGHT_LAYOUTS[0] and (
        body.get("weight_bits"), body.get("packing")
    ) != (4, 2):
        errors.append(
            SpecError(
                body.at("weight_layout"),
                f"{what}: weight_layout {body['weight_layout']} packs int4 nibbles; it needs "
                f"weight_bits 4 and packing 2 (this dtype: weight_bits {body.get('weight_bits')}, "
                f"packing {body.get('packing')})",
                f"use weight_layout {WEIGHT_LAYOUTS[0]} for unpacked weights",
            )
        )
    if "accumulator" in body and expect_choice(
        body["accumulator"], tuple(ACCUMULATORS), body.at("accumulator"), f"{what}: accumulator", errors
    ) and body["accumulator"] not in TEMPLATE_ACCUMULATORS:
        errors.append(
            SpecError(
                body.at("accumulator"),
                f"{what}: accumulator {body['accumulator']} is not yet supported by the FlyDSL "
                "templates",
                f"declare one of {', '.join(TEMPLATE_ACCUMULATORS)} (moegen.core.vocabulary."
                "TEMPLATE_ACCUMULATORS), or remove the dtype",
            )
        )
    if "activation_rows" in body:
        expect_choice(
            body["activation_rows"],
            ACTIVATION_ROWS,
            body.at("activation_rows"),
            f"{what}: activation_rows",
            errors,
        )
    if "intermediate" in body:
        expect_choice(
            body["intermediate"], tuple(TORCH_DTYPES), body.at("intermediate"), f"{what}: intermediate", errors
        )


def _load_scales(what: str, body: LMap, errors: list[SpecError]) -> tuple[Scale, ...]:
    """The `scales:` list of one dtype entry: each a mapping {kind, dtype, applied[, group]}."""
    if "scales" not in body:
        return ()
    scales = body["scales"]
    if not isinstance(scales, LList):
        errors.append(
            SpecError(body.at("scales"), f"{what}: scales must be a list", "write [] for none")
        )
        return ()
    out, kinds = [], set()
    for i, entry in enumerate(scales):
        where = f"{what}: scales[{i}]"
        if not isinstance(entry, LMap):
            errors.append(
                SpecError(
                    scales.item_loc[i],
                    f"{where} must be a mapping, not {type_name(entry)}",
                    "write e.g. {kind: per_token, dtype: float32, applied: epilogue}",
                )
            )
            continue
        n0 = len(errors)
        check_keys(entry, SCALE_KEYS, where, errors, required=SCALE_REQUIRED_KEYS)
        kind = entry.get("kind")
        if "kind" in entry:
            expect_choice(kind, tuple(SCALE_KINDS), entry.at("kind"), f"{where}.kind", errors)
        if "dtype" in entry:
            expect_choice(entry["dtype"], tuple(SCALE_DTYPE_BITS), entry.at("dtype"), f"{where}.dtype", errors)
        if "applied" in entry:
            expect_choice(entry["applied"], SCALE_APPLIED, entry.at("applied"), f"{where}.applied", errors)
        if kind == "per_group":
            if "group" not in entry:
                errors.append(
                    SpecError(entry.loc, f"{where}: a per_group scale needs its group size", "add e.g. group: 32")
                )
            elif expect_int(entry["group"], entry.at("group"), f"{where}.group", errors) and entry["group"] < 1:
                errors.append(SpecError(entry.at("group"), f"{where}.group must be >= 1", "write e.g. group: 32"))
        elif "group" in entry:
            errors.append(
                SpecError(entry.key_loc["group"], f"{where}: only a per_group scale has a group size", "remove `group:`")
            )
        if len(errors) > n0:
            continue
        if kind in kinds:
            errors.append(
                SpecError(entry.at("kind"), f"{where}: a second {kind} scale", "declare each kind once")
            )
            continue
        kinds.add(kind)
        if (kind, entry["applied"]) not in TEMPLATE_SCALES:
            supported = ", ".join(f"{k} applied in the {a}" for k, a in TEMPLATE_SCALES)
            errors.append(
                SpecError(
                    entry.at("kind"),
                    f"{where}: a {kind} scale applied in the {entry['applied']} is not yet "
                    "supported by the FlyDSL templates",
                    f"the templates implement: {supported}; remove this dtype until they do",
                )
            )
            continue
        out.append(Scale(kind, entry["dtype"], entry["applied"], entry.get("group", 0)))
    return tuple(out)


def _load_torch_dtype(
    what: str,
    arch: str,
    entry: LMap,
    act_torch: dict[str, str],
    weight_torch: dict[str, str],
    errors: list[SpecError],
) -> None:
    """One `torch_dtype.<arch>` entry: the torch dtypes of activations and weights there."""
    check_keys(
        entry, TORCH_DTYPE_KEYS, f"{what}: torch_dtype.{arch}", errors, required=TORCH_DTYPE_KEYS
    )
    for key, dest in (("activation", act_torch), ("weight", weight_torch)):
        if key in entry and expect_choice(
            entry[key],
            tuple(TORCH_DTYPES),
            entry.at(key),
            f"{what}: torch_dtype.{arch}.{key}",
            errors,
        ):
            dest[arch] = entry[key]


def _load_mfma(
    what: str, arch: str, entry: LMap, mfma: dict[str, Mfma], errors: list[SpecError]
) -> None:
    """One `mfma.<arch>` entry: the MFMA op, its K depth and each lane's operand vector."""
    where = f"{what}: mfma.{arch}"
    check_keys(entry, MFMA_KEYS, where, errors, required=MFMA_KEYS)
    ok = all(k in entry for k in MFMA_KEYS)
    for key in MFMA_KEYS:
        if key not in entry:
            continue
        check = expect_str if key in ("op", "operand") else expect_int
        ok &= check(entry[key], entry.at(key), f"{where}.{key}", errors)
    if ok:
        mfma[arch] = Mfma(entry["op"], entry["k"], entry["operand"], entry["width"])


def _check_mfma_accumulator(
    what: str, body: LMap, mfma: Mapping[str, Mfma], errors: list[SpecError]
) -> None:
    """Each arch's MFMA accumulates in the dtype's `accumulator` (rocdl names its result type
    first: mfma_<acc>_<M>x<N>x<K>...): an i32 accumulator needs the integer MFMAs, f32 the
    float ones."""
    acc = body.get("accumulator", "f32")
    if acc not in ACCUMULATORS:
        return
    for arch, m in mfma.items():
        if m.op.split("_")[:2] != ["mfma", acc]:
            errors.append(
                SpecError(
                    body["mfma"][arch].at("op"),
                    f"{what}: mfma.{arch}.op {m.op} does not accumulate in the dtype's "
                    f"accumulator {acc}",
                    f"declare an mfma_{acc}_* op for {arch}, or the accumulator its op has",
                )
            )


def _load_dtype(
    name: str, body: LMap, archs: Mapping[str, Arch], errors: list[SpecError]
) -> DType | None:
    """One `dtypes:` entry; every problem in it is reported (None if there is any)."""
    n0 = len(errors)
    what = f"dtype {name!r}"
    check_keys(body, DTYPE_KEYS, what, errors, required=DTYPE_REQUIRED_KEYS)
    _check_dtype_storage(what, body, errors)
    scales = _load_scales(what, body, errors)
    act_torch: dict[str, str] = {}
    weight_torch: dict[str, str] = {}
    mfma: dict[str, Mfma] = {}
    for section in ("torch_dtype", "mfma"):
        if section not in body:
            continue
        per_arch = body[section]
        if not expect_map(per_arch, body.at(section), f"{what}: {section}", errors):
            continue
        for arch, entry in per_arch.items():
            if arch not in archs:
                errors.append(
                    SpecError(
                        per_arch.key_loc[arch],
                        f"{what}: {section} names unknown arch {arch!r}{_not_a_string(arch)}",
                        f"{_suggest(arch, archs)}declare it under `archs:` or remove it"
                        + ("" if isinstance(arch, str) else f"; {_quote_hint(arch)}"),
                    )
                )
                continue
            if not expect_map(entry, per_arch.at(arch), f"{what}: {section}.{arch}", errors):
                continue
            if section == "torch_dtype":
                _load_torch_dtype(what, arch, entry, act_torch, weight_torch, errors)
            else:
                _load_mfma(what, arch, entry, mfma, errors)
    _check_mfma_accumulator(what, body, mfma, errors)
    if len(errors) > n0:
        return None
    return DType(
        name=name,
        activation=body["activation"],
        activation_bits=body["activation_bits"],
        weight=body["weight"],
        weight_bits=body["weight_bits"],
        packing=body["packing"],
        weight_layout=body.get("weight_layout", WEIGHT_LAYOUTS[0]),
        scales=scales,
        accumulator=body.get("accumulator", "f32"),
        intermediate=body.get("intermediate"),
        activation_rows=body.get("activation_rows", ACTIVATION_ROWS[0]),
        act_torch=MappingProxyType(dict(sorted(act_torch.items()))),
        weight_torch=MappingProxyType(dict(sorted(weight_torch.items()))),
        mfma=MappingProxyType(dict(sorted(mfma.items()))),
    )


def _load_shapes(m: LMap, errors: list[SpecError]) -> list[Shape]:
    shapes = []
    for name, body in m.items():
        if not check_name(name, m.key_loc[name], "shape", errors) or not expect_map(
            body, m.at(name), f"shape {name}", errors
        ):
            continue
        n0 = len(errors)
        check_keys(body, SHAPE_KEYS, f"shape {name!r}", errors, required=SHAPE_KEYS)
        for key in SHAPE_KEYS:
            if key in body:
                expect_int(body[key], body.at(key), f"shape {name!r}: {key}", errors)
        if len(errors) == n0:
            shapes.append(
                Shape(
                    name,
                    body["experts"],
                    body["model_dim"],
                    body["inter"],
                    body["topk"],
                )
            )
    return shapes


def load_spec(path: str | Path, errors: list[SpecError]) -> Spec | None:
    """Parse and structurally validate; problems go to `errors`. None if unusable."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.append(
            SpecError(
                Location(shown, 1, 1),
                "file not found",
                "run from the project root or pass --variants PATH",
            )
        )
        return None
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(
            SpecError(Location(shown, 1, 1), f"cannot read: {exc}", "save it as UTF-8 text")
        )
        return None
    doc, errs = load(text, shown)
    errors.extend(errs)
    if doc is None:
        if not errs:
            errors.append(
                SpecError(
                    Location(shown, 1, 1),
                    "the file is empty",
                    "declare archs:, dtypes:, shapes: and matrix: or variants:",
                )
            )
        return None
    if not isinstance(doc, LMap):
        errors.append(
            SpecError(
                Location(shown, 1, 1),
                f"the top level must be a mapping, not {type_name(doc)}",
                "start with `archs:`",
            )
        )
        return None
    check_keys(doc, TOP_KEYS, "the top level", errors, required=("archs", "dtypes", "shapes"))
    if isinstance(doc.get("shapes"), LMap):
        check_keys(doc["shapes"], tuple(doc["shapes"]), "shapes", errors, required=REQUIRED_SHAPES)
    if "version" in doc:
        expect_choice(doc["version"], (1,), doc.at("version"), "version", errors)

    archs = {}
    if "archs" in doc and expect_map(doc["archs"], doc.at("archs"), "archs", errors):
        archs = _load_archs(doc["archs"], errors)
    dtypes, broken = {}, set()
    if "dtypes" in doc and expect_map(doc["dtypes"], doc.at("dtypes"), "dtypes", errors):
        for name, body in doc["dtypes"].items():
            loc = doc["dtypes"].key_loc[name]
            if check_name(name, loc, "dtype", errors) and expect_map(
                body, doc["dtypes"].at(name), f"dtype {name}", errors
            ):
                dt = _load_dtype(name, body, archs, errors)
                if dt is not None:
                    dtypes[name] = dt
                    continue
            broken.add(name)
    shapes = []
    if "shapes" in doc and expect_map(doc["shapes"], doc.at("shapes"), "shapes", errors):
        shapes = _load_shapes(doc["shapes"], errors)

    defaults = doc.get("defaults", LMap())
    if not isinstance(defaults, LMap):
        expect_map(defaults, doc.at("defaults"), "defaults", errors)
        defaults = LMap()
    if not hasattr(defaults, "loc"):
        defaults.loc, defaults.key_loc, defaults.value_loc = (
            Location(shown, 1, 1),
            {},
            {},
        )
    check_keys(defaults, VARIANT_KEYS, "defaults", errors)

    matrix, variants = doc.get("matrix", LList()), doc.get("variants", LList())
    for key, seq in (("matrix", matrix), ("variants", variants)):
        if not isinstance(seq, LList):
            errors.append(
                SpecError(
                    doc.at(key),
                    f"{key} must be a list of entries, not {type_name(seq)}",
                    "start each entry with '- '",
                )
            )
    matrix = matrix if isinstance(matrix, LList) else LList()
    variants = variants if isinstance(variants, LList) else LList()
    if not matrix and not variants and "matrix" not in doc and "variants" not in doc:
        errors.append(
            SpecError(
                doc.loc,
                "no variants declared",
                "add a `matrix:` block or `variants:` entries",
            )
        )
    for seq in (matrix, variants):
        if not hasattr(seq, "loc"):
            seq.loc, seq.item_loc = Location(shown, 1, 1), []
    return Spec(
        path=shown,
        archs=MappingProxyType(archs),
        dtypes=MappingProxyType(dict(sorted(dtypes.items()))),
        shapes=tuple(shapes),
        defaults=defaults,
        matrix=matrix,
        variants=variants,
        broken_dtypes=frozenset(broken),
    )


def raise_if(errors: list[SpecError]) -> None:
    if errors:
        raise SpecErrors(errors)
