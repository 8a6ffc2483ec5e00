"""variants.yaml validation: golden error texts (an unknown key at every level, non-string
names), seeded fuzzing that never crashes the CLI, and every input fuzzing found kept as a case."""

from __future__ import annotations

import copy
import io
import os
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moegen.cli.main import main
from moegen.spec.expand import enumerate_variants
from moegen.spec.model import DTYPE_KEYS, SHAPE_KEYS, TOP_KEYS, VARIANT_KEYS

GOLDEN = Path(__file__).parent / "golden" / "spec_errors"
MINI_TEXT = (Path(__file__).parent / "fixtures" / "mini" / "variants.yaml").read_text()
ERROR_LINE = re.compile(r"^variants\.yaml:\d+:\d+: error: ")


def _sub(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, f"fixture changed: {old!r} not found"
        return text.replace(old, new, 1)

    return edit


def _apply(edits, text: str) -> str:
    for edit in edits:
        text = edit(text)
    return text


UNKNOWN_KEY_CASES = {
    "unknown_arch_key": _sub(
        "gfx942: {atomics: [float32]}", "gfx942: {atomics: [float32], atomic: []}"
    ),
    "unknown_dtype_key": _sub("    packing: 1\n", "    packing: 1\n    packng: 2\n"),
    "unknown_torch_dtype_key": _sub(
        "      gfx942: {activation: bfloat16, weight: bfloat16}",
        "      gfx942: {activation: bfloat16, weight: bfloat16, weights: bfloat16}",
    ),
    "unknown_mfma_key": _sub("operand: i16, width: 4}", "operand: i16, width: 4, widht: 4}"),
    "unknown_shape_key": _sub("inter: 128, topk: 2}", "inter: 128, topk: 2, top_k: 2}"),
    "unknown_defaults_key": _sub("defaults:\n", "defaults:\n  split: 1\n"),
    "unknown_defaults_tile_key": _sub(
        "tile: {m: 16, n: 64, k: 64}", "tile: {m: 16, n: 64, k: 64, kk: 1}"
    ),
    "unknown_matrix_block_key": _sub(
        "    split_k: [1, 2]\n", "    split_k: [1, 2]\n    stages: [1]\n"
    ),
    "unknown_matrix_tile_key": _sub(
        "    split_k: [1, 2]\n", "    split_k: [1, 2]\n    tile: {mm: 16}\n"
    ),
    "unknown_exclude_rule_key": _sub("{stage: 2, split_k: 2}", "{stage: 2, split_k: 2, splitk: 2}"),
    "unknown_variant_tile_key": _sub("tile: {m: 32}", "tile: {m: 32, nn: 64}"),
}

# Each case: one kind of bad input, as an edit of the valid mini spec.
CASES = {
    "unknown_top_key": _sub("version: 1\n", "version: 1\nvarients: []\n"),
    "unknown_variant_key": _sub(
        "    split_k: 2\n    tile: {m: 32}", "    split_k: 2\n    tiel: {m: 32}"
    ),
    "bad_type": _sub("    stage: 1\n    split_k: 2", "    stage: one\n    split_k: 2"),
    "bad_int_type": _sub("    split_k: 2\n    tile", "    split_k: 2.5\n    tile"),
    "yaml_syntax": _sub("  - dtype: [bf16]\n", "  - dtype: [bf16\n"),
    "duplicate_names": lambda t: t + "  - {dtype: bf16, addressing: per_expert, stage: 2}\n",
    "path_like_name": lambda t: t
    + "  - {dtype: bf16, addressing: per_expert, stage: 2, name: ../../etc/passwd}\n",
    "contradictory_axes": _sub("    exclude:\n      - {stage: 2, split_k: 2}\n", ""),
    "split_k_on_stage_2": lambda t: t
    + "  - {dtype: bf16, addressing: per_expert, stage: 2, split_k: 4}\n",
    "unknown_dtype": _sub("  - dtype: [bf16]\n", "  - dtype: [bf16, fp8]\n"),
    "unknown_arch": _sub("  archs: [gfx942, gfx950]", "  archs: [gfx942, gfx1100]"),
    "tile_not_dividing_shape": _sub("tile: {m: 32}", "tile: {m: 32, n: 96}"),
    "split_k_not_dividing": _sub("    stage: 1\n    split_k: 2", "    stage: 1\n    split_k: 3"),
    "tile_kernel_cannot_handle": _sub("tile: {m: 32}", "tile: {m: 24, k: 16}"),
    # Tiles per regime: every tile of a family but one says up to how many tokens it serves.
    "tile_regime_without_open_tile": _sub(
        "    split_k: [1, 2]\n",
        "    split_k: [1, 2]\n    tile: [{m: 16, max_tokens: 64}, {m: 64, max_tokens: 512}]\n",
    ),
    "tile_regime_two_open_tiles": _sub(
        "    split_k: [1, 2]\n",
        "    split_k: [1, 2]\n    tile: [{m: 16, max_tokens: 64}, {m: 32}, {m: 64}]\n",
    ),
    "tile_regime_same_max_tokens": _sub(
        "    split_k: [1, 2]\n",
        "    split_k: [1, 2]\n    tile: [{m: 16, max_tokens: 64}, {m: 32, max_tokens: 64}, {m: 64}]\n",
    ),
    "tile_regime_bad_max_tokens": _sub(
        "    split_k: [1, 2]\n",
        "    split_k: [1, 2]\n    tile: [{m: 16, max_tokens: 0}, {m: 64}]\n",
    ),
    "duplicate_yaml_key": _sub(
        "    stage: 1\n    split_k: 2", "    stage: 1\n    stage: 2\n    split_k: 2"
    ),
    "missing_dtype_property": _sub("    packing: 1\n", ""),
    "exclude_matches_nothing": _sub(
        "{stage: 2, split_k: 2}", "{stage: 2, split_k: 2}\n      - {split_k: 8}"
    ),
    "no_atomic_for_out_dtype": lambda t: t
    + "  - {dtype: bf16, addressing: per_expert, stage: 2, out_dtype: bfloat16}\n",
    # The backend axis: one vocabulary, checked wherever a key may stand (defaults, a matrix
    # axis item, an explicit entry, an exclude rule), each error at its own position.
    "unknown_backend": lambda t: _apply(
        [
            _sub("defaults:\n", "defaults:\n  backend: flydls\n"),
            _sub("    split_k: [1, 2]\n", "    split_k: [1, 2]\n    backend: [flydsl, cuda]\n"),
            _sub("{stage: 2, split_k: 2}", "{stage: 2, split_k: 2}\n      - {backend: 7}"),
            _sub("    tile: {m: 32}", "    tile: {m: 32}\n    backend: [flydsl]"),
        ],
        t,
    ),
    "exclude_names_unset_backend": _sub("{stage: 2, split_k: 2}", "{stage: 2, backend: flydsl}"),
    "unknown_floor_key": _sub("defaults:\n", "defaults:\n  floors: {kib_inflight: 6}\n"),
    "bad_floor_value": _sub(
        "    split_k: [1, 2]\n",
        "    split_k: [1, 2]\n    floors: {mfma_per_load: fast, spills: -1}\n",
    ),
    "floors_not_a_mapping": _sub("    tile: {m: 32}", "    tile: {m: 32}\n    floors: 6"),
    # Scales, accumulator and intermediate: every problem at its own position; kinds the
    # vocabulary knows but the FlyDSL templates do not implement are refused where declared.
    "bad_scales": _sub(
        "    scales: []\n",
        "    scales:\n"
        "      - {kind: per_tokn, dtype: float32, applied: epilogue}\n"
        "      - per_channel\n"
        "      - {kind: per_channel, dtype: float16, applied: epilog}\n"
        "      - {kind: per_channel, applied: epilogue, group: 32}\n"
        "      - {kind: per_group, dtype: float32, applied: weights}\n",
    ),
    "unsupported_scales": _sub(
        "    scales: []\n",
        "    scales:\n"
        "      - {kind: per_group, dtype: float32, applied: epilogue, group: 32}\n"
        "      - {kind: smoothing, dtype: float32, applied: epilogue}\n"
        "      - {kind: per_channel, dtype: float32, applied: weights}\n"
        "      - {kind: per_token, dtype: float32, applied: epilogue}\n"
        "      - {kind: per_token, dtype: float32, applied: epilogue}\n",
    ),
    # i32 is generated (integer MFMAs): on a dtype whose MFMAs are float ones it is refused by
    # moegen/backends/flydsl/limits.py, at the variants using it, naming the MFMA per arch.
    "bad_accumulator": _sub("    packing: 1\n", "    packing: 1\n    accumulator: i32\n"),
    # split_nibbles_16x16 packs int4 nibbles: refused on a dtype without packed 4-bit weights
    "nibble_layout_on_unpacked": _sub(
        "    packing: 1\n", "    packing: 1\n    weight_layout: split_nibbles_16x16\n"
    ),
    "bad_intermediate": _sub("    packing: 1\n", "    packing: 1\n    intermediate: bf16\n"),
    "unknown_accumulator": _sub("    packing: 1\n", "    packing: 1\n    accumulator: f64\n"),
    "empty_file": lambda t: "",
    "top_level_list": lambda t: "- a\n- b\n",
    "many_errors_at_once": lambda t: _sub("  - dtype: [bf16]\n", "  - dtype: [bf16, int3]\n")(
        _sub("    stage: 1\n    split_k: 2", "    stage: 3\n    split_k: 2")(t)
    ),
    # An unknown key at each level of the schema below the top (same style: the allowed keys
    # and a did-you-mean), then all of them in one document, every one reported in one run.
    **UNKNOWN_KEY_CASES,
    "unknown_keys_at_every_level": lambda t: _apply(UNKNOWN_KEY_CASES.values(), t),
    # Keys YAML reads as non-strings (16, true, null, 1.5) where a name or a key is expected.
    "numeric_dtype_name": _sub("  bf16:\n", "  16:\n"),
    "non_string_keys": lambda t: _apply(
        [
            _sub(
                "  production:",
                "  1024: {experts: 4, model_dim: 256, inter: 128, topk: 2}\n  production:",
            ),
            _sub(
                "      gfx950: {op:",
                "      1.5: {op: x, k: 1, operand: x, width: 1}\n      gfx950: {op:",
            ),
            _sub("defaults:\n", "defaults:\n  true: false\n"),
            _sub("    tile: {m: 32}", "    tile: {m: 32}\n    null: 1"),
        ],
        t,
    ),
}


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_golden(case, mini):
    (mini / "variants.yaml").write_text(CASES[case](MINI_TEXT))
    before = sorted(p.relative_to(mini) for p in mini.rglob("*"))
    rc, out, err = run_cli(["render"])
    assert rc == 1
    assert "Traceback" not in err
    assert (
        sorted(p.relative_to(mini) for p in mini.rglob("*")) == before
    ), "an invalid spec wrote files"
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("MOEGEN_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(err)
    assert err == golden.read_text()
    for line in err.splitlines():
        if "error:" in line:
            assert ERROR_LINE.match(line), line


def test_many_errors_are_all_reported(mini):
    (mini / "variants.yaml").write_text(CASES["many_errors_at_once"](MINI_TEXT))
    rc, _, err = run_cli(["validate"])
    assert rc == 1
    assert "int3" in err and "stage 3" in err
    assert err.count(": error: ") >= 2


def test_valid_spec_validates(mini):
    rc, out, err = run_cli(["validate"])
    assert (rc, err) == (0, "")
    assert "ok (7 variants)" in out


# ---------------------------------------------------------------------------------------------
# property: any YAML document gives exit 0 or 1, never a traceback, and errors carry a line.
# Seeded (derandomize) and without hypothesis' local example database, so every run tries the
# same inputs; every input a fuzz run ever found is kept below as a named regression case.
# A longer search: MOEGEN_FUZZ_EXAMPLES=3000 python -m pytest tests/test_spec.py -k random

FUZZ_EXAMPLES = int(os.environ.get("MOEGEN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

WORDS = list(TOP_KEYS + DTYPE_KEYS + SHAPE_KEYS + VARIANT_KEYS) + [
    "bf16",
    "flydsl",
    "gfx942",
    "per_expert",
    "whole_tensor",
    "m",
    "n",
    "k",
    "exclude",
    "name",
    "x/../y",
]
# YAML reads unquoted 16, true, null and 1.5 as non-strings: keys can be any of them.
keys = st.one_of(
    st.sampled_from(WORDS),
    st.integers(-3, 300),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(
    st.sampled_from(WORDS),
    st.integers(-3, 300),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.text(max_size=6),
)
docs = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=25,
)
MINI_DOC = yaml.safe_load(MINI_TEXT)


def _check_output(rc: int, err: str) -> None:
    assert rc in (0, 1)
    assert "Traceback" not in err
    if rc == 1:
        lines = [ln for ln in err.splitlines() if ": error: " in ln]
        assert lines, err
        assert all(ERROR_LINE.match(ln) for ln in lines), err


def _validate(mini: Path, text: str) -> tuple[int, str]:
    (mini / "variants.yaml").write_text(text)
    rc, _, err = run_cli(["validate"])
    return rc, err


def _dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False)  # sorting would fail on mixed-type keys


@FUZZ
@given(doc=docs)
def test_random_documents(doc, mini):
    _check_output(*_validate(mini, _dump(doc)))


@FUZZ
@given(data=st.data())
def test_random_edits_of_a_valid_spec(data, mini):
    """Deletions / insertions in the real text reach deeper validation than random documents."""
    text = MINI_TEXT
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        text = (
            text[:i]
            + data.draw(st.sampled_from(["", "x", ": ", "- ", "[", "1", "\n  ", "{"]))
            + text[j:]
        )
    _check_output(*_validate(mini, text))


def _containers(node, path=()):
    """(path, mapping or list) of every container in a parsed document, the root first."""
    if isinstance(node, (dict, list)):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            yield from _containers(v, path + (k,))


@FUZZ
@given(data=st.data())
def test_random_mutations_at_every_level(data, mini):
    """Replace, add or delete one entry of any mapping or list of the valid spec, so every level
    of the schema (dtype, mfma.<arch>, shape, defaults, matrix block, exclude rule...) sees keys
    and values of every YAML type, non-string keys included."""
    doc = copy.deepcopy(MINI_DOC)
    for _ in range(data.draw(st.integers(1, 3))):
        containers = list(_containers(doc))
        _, node = data.draw(st.sampled_from(containers))
        action = data.draw(st.sampled_from(["replace", "add", "delete"]))
        if isinstance(node, dict):
            if action == "add" or not node:
                node[data.draw(keys)] = data.draw(docs)
            elif action == "replace":
                node[data.draw(st.sampled_from(list(node)))] = data.draw(docs)
            else:
                del node[data.draw(st.sampled_from(list(node)))]
        elif action == "add" or not node:
            node.append(data.draw(docs))
        else:
            j = data.draw(st.integers(0, len(node) - 1))
            if action == "replace":
                node[j] = data.draw(docs)
            else:
                del node[j]
    _check_output(*_validate(mini, _dump(doc)))


# Inputs the fuzz tests above found, each kept as it was found (an edit of the mini spec), with
# the positioned error it must now give instead of a traceback.
FOUND_BY_FUZZING = {
    # test_random_edits_of_a_valid_spec (unseeded, replayed from hypothesis' local database):
    # expand.py joined the declared dtype names into its message: TypeError on the integer 16.
    "numeric_dtype_name_crashed_expand": (
        _sub("  bf16:\n", "  16:\n"),
        "variants.yaml:7:3: error: dtype name 16 (YAML reads it as an integer, not a string)",
    ),
    # test_random_mutations_at_every_level (seeded): a list as an item of the dtype axis;
    # expand.py looked it up in a frozenset: TypeError, unhashable LList.
    "list_in_dtype_axis_crashed_expand": (
        _sub("  - dtype: [bf16]\n", "  - dtype: [bf16, []]\n"),
        "variants.yaml:27:19: error: dtype [] is not one of: bf16",
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND_BY_FUZZING))
def test_regressions_found_by_fuzzing(case, mini):
    edit, expected = FOUND_BY_FUZZING[case]
    rc, err = _validate(mini, edit(MINI_TEXT))
    _check_output(rc, err)
    assert rc == 1 and expected in err, err


# ---------------------------------------------------------------------------------------------
# the backend axis: spelling the default backend out, at every place the key may stand, changes
# no variant, no name and no path; a list-valued axis expands and its values can be excluded.


def _listed(mini: Path, text: str) -> list[dict]:
    import json

    (mini / "variants.yaml").write_text(text)
    rc, out, err = run_cli(["list", "--format", "json"])
    assert (rc, err) == (0, ""), err
    return json.loads(out)


def test_explicit_default_backend_changes_nothing(mini):
    plain = _listed(mini, MINI_TEXT)
    spelled = _listed(
        mini,
        _apply(
            [
                _sub("defaults:\n", "defaults:\n  backend: flydsl\n"),
                _sub("    split_k: [1, 2]\n", "    split_k: [1, 2]\n    backend: [flydsl]\n"),
                _sub("    tile: {m: 32}", "    tile: {m: 32}\n    backend: flydsl"),
            ],
            MINI_TEXT,
        ),
    )
    assert spelled == plain
    assert len(plain) == 7
    assert all(
        "backend" not in row and row["module"].startswith("generated/flydsl/") for row in plain
    )


def test_exclude_rule_on_backend_axis(mini):
    rows = _listed(
        mini,
        _sub(
            "{stage: 2, split_k: 2}",
            "{stage: 2, split_k: 2}\n      - {backend: flydsl, stage: 2}",
        )(_sub("    split_k: [1, 2]\n", "    split_k: [1, 2]\n    backend: [flydsl]\n")(MINI_TEXT)),
    )
    assert sorted(r["name"] for r in rows if r["stage"] == 2) == []
    assert len(rows) == 5  # 4 stage-1 products + the explicit entry


def test_backend_errors_name_the_allowed_ones(mini):
    rc, err = _validate(mini, CASES["unknown_backend"](MINI_TEXT))
    assert rc == 1
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    backend_lines = [ln for ln in lines if "backend" in ln]
    assert len(backend_lines) == 4, err
    assert all("is not one of: flydsl" in ln for ln in backend_lines), err
    # each at its own line
    assert len({ln.split(":")[1] for ln in backend_lines}) == 4, err


# ---------------------------------------------------------------------------------------------
# a second backend: archs of another vendor, tile regimes (`configs:`) where the backend takes
# them, each mistake reported at its place with the fix.

SM90 = _apply(
    [
        _sub(
            "  gfx950: {atomics: [float32, bfloat16]}\n",
            "  gfx950: {atomics: [float32, bfloat16]}\n  sm90: {atomics: [float32], vendor: nvidia}\n",
        ),
        _sub(
            "      gfx950: {activation: bfloat16, weight: bfloat16}\n",
            "      gfx950: {activation: bfloat16, weight: bfloat16}\n"
            "      sm90: {activation: bfloat16, weight: bfloat16}\n",
        ),
    ],
    MINI_TEXT,
)
TRITON_ENTRY = (
    "  - {backend: triton, archs: [sm90, gfx942], dtype: bf16, addressing: per_expert, stage: 2,\n"
    "     configs: [{tokens: 64, m: 16, n: 64, k: 128, warps: 4, stages: 4},\n"
    "               {tokens: 4096, m: 64, n: 128, k: 64, warps: 8, stages: 3}]}\n"
)


def test_triton_variant_with_configs_lists(mini):
    rows = _listed(mini, SM90 + TRITON_ENTRY)
    (row,) = [r for r in rows if r.get("backend") == "triton"]
    assert row["name"] == "moe_s2_bf16_per_expert_triton"
    assert row["module"] == "generated/triton/moe_s2_bf16_per_expert_triton.py"
    assert row["archs"] == ["sm90", "gfx942"]
    assert len(rows) == 8  # the mini spec's 7 FlyDSL variants are unchanged beside it


@pytest.mark.parametrize(
    "edit, message",
    [
        # FlyDSL cannot target an NVIDIA arch
        (
            lambda t: t + "  - {dtype: bf16, addressing: per_expert, stage: 2, archs: [sm90]}\n",
            "backend 'flydsl' cannot target arch 'sm90' (vendor nvidia; it targets amd)",
        ),
        # an unknown vendor
        (
            _sub(
                "sm90: {atomics: [float32], vendor: nvidia}",
                "sm90: {atomics: [float32], vendor: nvdia}",
            ),
            "arch 'sm90': vendor 'nvdia' is not one of: amd, nvidia",
        ),
        # Triton needs its tile regimes ...
        (
            lambda t: t
            + TRITON_ENTRY.replace(
                ",\n     configs: [{tokens: 64, m: 16, n: 64, k: 128, warps: 4, stages: 4},\n               {tokens: 4096, m: 64, n: 128, k: 64, warps: 8, stages: 3}]",
                "",
            ),
            "backend 'triton' needs `configs:`",
        ),
        # ... FlyDSL takes none
        (
            _sub(
                "    split_k: [1, 2]\n",
                "    split_k: [1, 2]\n    configs: [{tokens: 1, m: 16, n: 64, k: 64, warps: 4, stages: 2}]\n",
            ),
            "backend 'flydsl' takes no `configs:`",
        ),
        # regimes ascend by token count
        (
            lambda t: t + TRITON_ENTRY.replace("tokens: 4096", "tokens: 64"),
            "configs tokens=64 must be larger than the previous entry's 64",
        ),
        # every key of a regime, no unknown one
        (
            lambda t: t + TRITON_ENTRY.replace("warps: 8, stages: 3", "warps: 8, stage: 3"),
            "unknown key 'stage' in a configs entry; allowed keys: tokens, m, n, k, warps, stages",
        ),
        # what the Triton templates cannot handle
        (
            lambda t: t + TRITON_ENTRY.replace("m: 64, n: 128", "m: 48, n: 128"),
            "configs[1] (tokens <= 4096): m=48 must be a power of two >= 16",
        ),
    ],
)
def test_backend_arch_and_config_errors(mini, edit, message):
    rc, err = _validate(mini, edit(SM90))
    _check_output(rc, err)
    assert rc == 1 and message in err, err
def test_floors_merge_key_by_key_over_the_defaults(mini):
    text = _apply(
        [
            _sub("defaults:\n", "defaults:\n  floors: {spills: 0, kib_in_flight: 1}\n"),
            _sub("    split_k: [1, 2]\n", "    split_k: [1, 2]\n    floors: {kib_in_flight: 6}\n"),
        ],
        MINI_TEXT,
    )
    (mini / "variants.yaml").write_text(text)
    by_name = {v.name: v for v in enumerate_variants(mini / "variants.yaml")}
    # the matrix block's kib_in_flight wins; spills comes from the defaults (FLOORS order)
    assert by_name["moe_s1_bf16_whole_tensor"].floors == (("kib_in_flight", 6), ("spills", 0))
    # the explicit entry declares none: the defaults' floors
    assert by_name["moe_s1_bf16_per_expert_splitk2_t32x64x64"].floors == (
        ("kib_in_flight", 1),
        ("spills", 0),
    )
