"""variants.yaml validation: golden error texts, and random documents never crash the CLI."""

from __future__ import annotations

import io
import os
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moegen.cli import main
from moegen.spec import DTYPE_KEYS, SHAPE_KEYS, TOP_KEYS, VARIANT_KEYS

GOLDEN = Path(__file__).parent / "golden" / "spec_errors"
MINI_TEXT = (Path(__file__).parent / "fixtures" / "mini" / "variants.yaml").read_text()
ERROR_LINE = re.compile(r"^variants\.yaml:\d+:\d+: error: ")


def _sub(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, f"fixture changed: {old!r} not found"
        return text.replace(old, new, 1)

    return edit


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
    "duplicate_yaml_key": _sub(
        "    stage: 1\n    split_k: 2", "    stage: 1\n    stage: 2\n    split_k: 2"
    ),
    "missing_dtype_property": _sub("    packing: 1\n", ""),
    "exclude_matches_nothing": _sub(
        "{stage: 2, split_k: 2}", "{stage: 2, split_k: 2}\n      - {split_k: 8}"
    ),
    "no_atomic_for_out_dtype": lambda t: t
    + "  - {dtype: bf16, addressing: per_expert, stage: 2, out_dtype: bfloat16}\n",
    "empty_file": lambda t: "",
    "top_level_list": lambda t: "- a\n- b\n",
    "many_errors_at_once": lambda t: _sub("  - dtype: [bf16]\n", "  - dtype: [bf16, int3]\n")(
        _sub("    stage: 1\n    split_k: 2", "    stage: 3\n    split_k: 2")(t)
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
# property: any YAML document gives exit 0 or 1, never a traceback, and errors carry a line

WORDS = list(TOP_KEYS + DTYPE_KEYS + SHAPE_KEYS + VARIANT_KEYS) + [
    "bf16",
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
        st.dictionaries(st.sampled_from(WORDS), inner, max_size=5),
    ),
    max_leaves=25,
)


def _check_output(rc: int, err: str) -> None:
    assert rc in (0, 1)
    assert "Traceback" not in err
    if rc == 1:
        lines = [ln for ln in err.splitlines() if ": error: " in ln]
        assert lines, err
        assert all(re.match(r"^variants\.yaml:\d+:\d+: error: ", ln) for ln in lines), err


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(doc=docs)
def test_random_documents(doc, mini):
    (mini / "variants.yaml").write_text(yaml.safe_dump(doc))
    _check_output(*run_cli(["validate"])[::2])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
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
    (mini / "variants.yaml").write_text(text)
    _check_output(*run_cli(["validate"])[::2])
