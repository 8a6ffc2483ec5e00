"""End-to-end CLI: exit codes, list == render enumeration, --check on the shipped project."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from moegen.cli.main import main
from tests.conftest import checkout_env


def run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "moegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=checkout_env(),
    )


def test_usage_errors_exit_2(mini):
    assert run("frobnicate", cwd=mini).returncode == 2
    assert run("list", "--format", "xml", cwd=mini).returncode == 2
    assert run(cwd=mini).returncode == 2


def test_missing_spec_exits_1_with_location(mini):
    proc = run("validate", "--variants", "nope.yaml", cwd=mini)
    assert proc.returncode == 1
    assert proc.stderr.startswith("nope.yaml:1:1: error: file not found")
    assert "Traceback" not in proc.stderr


def test_list_and_render_share_one_enumeration(mini, capsys):
    assert main(["list", "--format", "json", "-k", "*per_expert*"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {
        "moe_s1_bf16_per_expert",
        "moe_s1_bf16_per_expert_splitk2",
        "moe_s1_bf16_per_expert_splitk2_t32x64x64",
        "moe_s2_bf16_per_expert",
    }
    assert main(["render", "-k", "*per_expert*"]) == 0
    written = {p.stem for p in (mini / "generated" / "flydsl").glob("moe_*.py")}
    assert written == {r["name"] for r in rows}
    assert all((mini / r["module"]).exists() for r in rows)


def test_list_table(mini, capsys):
    assert main(["list", "-k", "moe_s2_*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["name", "dtype", "addressing"]
    assert out[-1] == "2 variants"


def test_glob_matching_nothing_lists_nothing(mini, capsys):
    assert main(["list", "-k", "nothing*"]) == 0
    assert capsys.readouterr().out.strip().endswith("0 variants")


def test_shipped_project_render_then_check_then_edit(project_copy):
    """Fresh render of the real spec; --check is clean; one edited variant -> a diff of its files only."""
    first = run("render", cwd=project_copy)
    assert first.returncode == 0, first.stderr
    assert run("render", "--check", cwd=project_copy).returncode == 0
    names = {
        r["name"] for r in json.loads(run("list", "--format", "json", cwd=project_copy).stdout)
    }
    tests = {p.name for p in (project_copy / "generated" / "tests").glob("test_*.py")}
    assert tests == {f"test_{n}.py" for n in names}, "one boundary test module per variant"
    spec = project_copy / "variants.yaml"
    text = spec.read_text()
    # per_expert stage 1 gains a routing-weight axis: exactly the new variants' files appear
    # (split-K 4 is not an edit the shipped tiles allow: the small shape's model_dim 256 / 4
    # is less than tile_k 128).
    head, sep, block = text.partition("    addressing: per_expert\n    stage: 1\n")
    assert sep and block.startswith("    split_k: [1, 2]\n")
    block = block.replace("    split_k: [1, 2]\n", "    split_k: [1, 2]\n    doweight: [false, true]\n", 1)
    spec.write_text(head + sep + block)
    proc = run("render", "--check", cwd=project_copy)
    assert proc.returncode == 1
    touched = set(re.findall(r"^(?:---|\+\+\+) [ab]/generated/(\S+)", proc.stdout, re.M))
    # Each variant has a module and a boundary test; the registry and MANIFEST list them all.
    # Each new variant comes in every tile the block lists (tiles per regime).
    base = "moe_s1_bf16_per_expert"
    tiles = {
        n[len(base) :]
        for n in names
        if n.startswith(base) and not n.endswith("_triton") and "_splitk" not in n
    }
    assert "" in tiles and len(tiles) >= 2, tiles
    expected = {"MANIFEST", "__init__.py"}
    for dt in ("bf16", "fp16"):
        for k in ("", "_splitk2"):
            for t in tiles:
                expected.add(f"flydsl/moe_s1_{dt}_per_expert{k}{t}_w.py")
                expected.add(f"tests/test_moe_s1_{dt}_per_expert{k}{t}_w.py")
    assert touched == expected
    assert "moegen render" in proc.stderr


def test_python_dash_m_entry_point(mini):
    proc = run("validate", cwd=mini)
    assert proc.returncode == 0 and "ok (7 variants)" in proc.stdout


def test_boundary_prints_spans_line_and_sweep(project_copy):
    proc = run("boundary", "moe_s1_bf16_whole_tensor", cwd=project_copy)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "w1                 128x6144x6144  whole tensor         9,663,676,416" in out
    assert "first inter that cannot be addressed (decode): 1366" in out
    assert "inter=1344-decode" in out and "inter=1408-decode" in out
    assert (
        run(
            "boundary", "moe_s1_bf16_whole_tensor", "--experts", "8", cwd=project_copy
        ).stdout.count("first inter that cannot be addressed (decode): 21846")
        == 1
    )
    bad = run("boundary", "moe_nope", cwd=project_copy)
    assert bad.returncode == 1 and "unknown variant" in bad.stderr and "Traceback" not in bad.stderr
