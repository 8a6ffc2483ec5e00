"""variants.yaml -> a validated Spec of frozen dataclasses.

The spec has five top-level sections:

    archs:    target architectures and what each can accumulate atomically
    dtypes:   what a dtype IS (bits, packing, scales, torch dtype and MFMA per arch)
    shapes:   problem shapes every variant must tile exactly (a small test shape, production)
    defaults: values a variant entry may leave out
    matrix:   blocks whose list-valued axes expand to a cartesian product (with `exclude:`)
    variants: explicit single entries

Loading checks structure (known keys in every mapping at every level, names that are strings,
types, ranges); `moegen.expand` turns the matrix and the explicit entries into Variants and
checks the combinations (and the keys of `tile:` and `exclude:` rules). Every problem is
collected with its file:line:col and a fix, so one run reports all of them.
"""

from __future__ import annotations

import difflib
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .errors import Location, SpecError, SpecErrors
from .yamlsrc import LList, LMap, load

ADDRESSING_MODES = ("whole_tensor", "per_expert")
STAGES = (1, 2)
WEIGHT_BITS = (4, 8, 16)
SCALE_KINDS = ("per_token", "per_channel", "per_group")
# torch's own vocabulary of dtype names that a kernel may read or write.
TORCH_DTYPES = {
    "bfloat16": 16,
    "float16": 16,
    "float32": 32,
    "float8_e4m3fnuz": 8,
    "float8_e4m3fn": 8,
    "int8": 8,
    "uint8": 8,
}
# small: unit tests and `moegen verify`; production: the boundary tests' sweep.
REQUIRED_SHAPES = ("small", "production")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")

TOP_KEYS = ("version", "archs", "dtypes", "shapes", "defaults", "matrix", "variants")
ARCH_KEYS = ("atomics",)
DTYPE_KEYS = (
    "activation",
    "activation_bits",
    "weight",
    "weight_bits",
    "packing",
    "scales",
    "torch_dtype",
    "mfma",
)
TORCH_DTYPE_KEYS = ("activation", "weight")
MFMA_KEYS = ("op", "k", "operand", "width")
SHAPE_KEYS = ("experts", "model_dim", "inter", "topk")
TILE_KEYS = ("m", "n", "k")
# Keys a variant may carry (defaults, matrix blocks and explicit entries share them).
VARIANT_KEYS = (
    "dtype",
    "addressing",
    "stage",
    "split_k",
    "archs",
    "tile",
    "doweight",
    "out_dtype",
    "preferred",
)
AXES = ("dtype", "addressing", "stage", "split_k", "doweight", "out_dtype", "preferred")


@dataclass(frozen=True)
class Mfma:
    """The MFMA instruction a dtype uses on one arch (op = flydsl.expr.rocdl function name)."""

    op: str
    k: int
    operand: str
    width: int


@dataclass(frozen=True)
class DType:
    """A dtype's declared properties; code reads these, never the dtype's name."""

    name: str
    activation: str
    activation_bits: int
    weight: str
    weight_bits: int
    packing: int
    scales: tuple[str, ...]
    act_torch: Mapping[str, str]
    weight_torch: Mapping[str, str]
    mfma: Mapping[str, Mfma]

    @property
    def weight_bytes(self) -> float:
        """Bytes per logical weight element (0.5 for int4)."""
        return self.weight_bits / 8

    @property
    def act_bytes(self) -> float:
        return self.activation_bits / 8


@dataclass(frozen=True)
class Arch:
    name: str
    atomics: tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    """A problem shape that every variant must tile exactly."""

    name: str
    experts: int
    model_dim: int
    inter: int
    topk: int


@dataclass(frozen=True)
class Source:
    """Where a variant was declared: an explicit entry, or a matrix block."""

    loc: Location
    kind: str  # "matrix" | "variant"
    index: int


@dataclass(frozen=True)
class Variant:
    """One fully resolved kernel variant: everything a template needs."""

    name: str
    dtype: DType
    addressing: str
    stage: int
    k_batch: int
    tile_m: int
    tile_n: int
    tile_k: int
    archs: tuple[str, ...]
    doweight: bool
    out_dtype: str
    preferred: bool
    source: Source = field(compare=False, repr=False)
    shapes: tuple[Shape, ...] = field(default=(), compare=False, repr=False)

    # --- paths: derived from the name in this one place ---------------------------------
    @property
    def module_relpath(self) -> str:
        return f"flydsl/{self.name}.py"

    @property
    def test_relpath(self) -> str:
        return f"tests/test_{self.name}.py"

    @property
    def module_import(self) -> str:
        return f"generated.flydsl.{self.name}"

    def shape(self, name: str) -> Shape:
        """One of the spec's problem shapes (`small`, `production`)."""
        for s in self.shapes:
            if s.name == name:
                return s
        raise KeyError(f"variants.yaml declares no shape {name!r} under `shapes:`")

    @property
    def boundary_cases(self) -> list:
        """The generated boundary test's cases (moegen.address_model decides them)."""
        from .address_model import boundary_cases

        prod = self.shape("production")
        return boundary_cases(
            self.runtime_info,
            experts=prod.experts,
            model_dim=prod.model_dim,
            topk=prod.topk,
            production_inter=prod.inter,
        )

    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters, in a fixed order (header, `moegen list`, manifest)."""
        return {
            "dtype": self.dtype.name,
            "addressing": self.addressing,
            "stage": self.stage,
            "split_k": self.k_batch,
            "tile": {"m": self.tile_m, "n": self.tile_n, "k": self.tile_k},
            "archs": list(self.archs),
            "doweight": self.doweight,
            "out_dtype": self.out_dtype,
            "preferred": self.preferred,
        }

    @property
    def runtime_info(self) -> dict[str, Any]:
        """Plain values a generated module keeps as VARIANT (read by guards and dispatch)."""
        return {
            "name": self.name,
            "stage": self.stage,
            "dtype": self.dtype.name,
            "addressing": self.addressing,
            "k_batch": self.k_batch,
            "tile_m": self.tile_m,
            "tile_n": self.tile_n,
            "tile_k": self.tile_k,
            "doweight": self.doweight,
            "out_dtype": self.out_dtype,
            "archs": list(self.archs),
            "act_bits": self.dtype.activation_bits,
            "weight_bits": self.dtype.weight_bits,
            "weight_pack": self.dtype.packing,
            "out_bits": TORCH_DTYPES[self.out_dtype],
            "preferred": self.preferred,
        }


@dataclass(frozen=True)
class Spec:
    path: str
    archs: Mapping[str, Arch]
    dtypes: Mapping[str, DType]
    shapes: tuple[Shape, ...]
    defaults: LMap
    matrix: LList
    variants: LList
    # Declared but invalid (already reported): references to them are not reported again.
    broken_dtypes: frozenset = frozenset()


# ---------------------------------------------------------------------------------------------
# small validation helpers: each appends to `errors` and returns whether the value is usable


def _suggest(word: str, allowed) -> str:
    close = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _not_a_string(value: Any) -> str:
    """' (YAML reads it as an integer, not a string)' for a non-string key; '' for a string.

    Unquoted 16, true, null or 1.5 are not words to YAML, so a key written that way never
    matches a name even when it looks like one.
    """
    if isinstance(value, str):
        return ""
    if value is None:
        kind = "null"
    elif isinstance(value, (bool, int)):
        kind = type_name(value)
    else:  # float, date, timestamp
        kind = f"a {type(value).__name__}"
    return f" (YAML reads it as {kind}, not a string)"


def _quote_hint(value: Any) -> str:
    """How to write a non-string key as a name: quoted, starting with a letter (e.g. 'x16')."""
    word = re.sub(r"[^a-z0-9_]", "_", "null" if value is None else str(value).lower())
    if not word[:1].isalpha():
        word = f"x{word}"
    return f"quote it, e.g. '{word}': names are strings of lowercase letters, digits and '_'"


def check_keys(
    m: LMap,
    allowed: tuple[str, ...],
    what: str,
    errors: list[SpecError],
    required: tuple[str, ...] = (),
) -> None:
    """Report each key of `m` outside `allowed` (did-you-mean included) and each missing one of
    `required`, each at its own position."""
    for key in m:
        if key not in allowed:
            errors.append(
                SpecError(
                    m.key_loc[key],
                    f"unknown key {key!r}{_not_a_string(key)} in {what}; "
                    f"allowed keys: {', '.join(allowed)}",
                    f"{_suggest(key, allowed)}remove or rename the key"
                    + ("" if isinstance(key, str) else " (keys are strings: quote it)"),
                )
            )
    for key in required:
        if key not in m:
            errors.append(
                SpecError(
                    m.loc,
                    f"{what} is missing the required key {key!r}",
                    f"add `{key}:`",
                )
            )


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return type(value).__name__


def expect_map(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if isinstance(value, LMap):
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} must be a mapping, not {type_name(value)}",
            "write `key: value` lines",
        )
    )
    return False


def expect_int(
    value: Any, loc: Location, what: str, errors: list[SpecError], minimum: int = 1
) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(
            SpecError(
                loc,
                f"{what} must be an integer, not {type_name(value)} ({value!r})",
                f"write a whole number >= {minimum}",
            )
        )
        return False
    if value < minimum:
        errors.append(
            SpecError(
                loc,
                f"{what} must be >= {minimum}, got {value}",
                f"use a value >= {minimum}",
            )
        )
        return False
    return True


def expect_str(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if isinstance(value, str) and value:
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} must be a non-empty string, not {type_name(value)}",
            "write a word",
        )
    )
    return False


def expect_bool(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if isinstance(value, bool):
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} must be true or false, not {type_name(value)} ({value!r})",
            "write true or false",
        )
    )
    return False


def expect_choice(value: Any, choices, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if (
        not isinstance(value, (LMap, LList))
        and value in choices
        and type(value) is type(next(iter(choices)))
    ):
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} {value!r} is not one of: {', '.join(map(str, choices))}",
            f"{_suggest(value, choices)}use one of the listed values",
        )
    )
    return False


def check_name(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    """A name that becomes part of a Python identifier and a file name."""
    if isinstance(value, str) and NAME_RE.match(value) and not keyword.iskeyword(value):
        return True
    if not isinstance(value, str):
        errors.append(
            SpecError(
                loc,
                f"{what} name {value!r}{_not_a_string(value)}: a name must be a string",
                _quote_hint(value),
            )
        )
        return False
    errors.append(
        SpecError(
            loc,
            f"{what} {value!r} is not a valid name (it becomes a file and module name)",
            "use lowercase letters, digits and '_', starting with a letter; no '/', '.' or '-'",
        )
    )
    return False


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
        check_keys(body, ARCH_KEYS, f"arch {name!r}", errors, required=ARCH_KEYS)
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
            archs[name] = Arch(name, tuple(atomics))
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
    if "scales" not in body:
        return
    scales = body["scales"]
    if isinstance(scales, LList):
        for i, s in enumerate(scales):
            expect_choice(s, SCALE_KINDS, scales.item_loc[i], f"{what}: scale kind", errors)
    else:
        errors.append(
            SpecError(body.at("scales"), f"{what}: scales must be a list", "write [] for none")
        )


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


def _load_dtype(
    name: str, body: LMap, archs: Mapping[str, Arch], errors: list[SpecError]
) -> DType | None:
    """One `dtypes:` entry; every problem in it is reported (None if there is any)."""
    n0 = len(errors)
    what = f"dtype {name!r}"
    check_keys(body, DTYPE_KEYS, what, errors, required=DTYPE_KEYS)
    _check_dtype_storage(what, body, errors)
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
    if len(errors) > n0:
        return None
    return DType(
        name=name,
        activation=body["activation"],
        activation_bits=body["activation_bits"],
        weight=body["weight"],
        weight_bits=body["weight_bits"],
        packing=body["packing"],
        scales=tuple(body["scales"]),
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
