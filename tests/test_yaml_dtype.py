"""Adding a dtype is a YAML edit (issue 11): a dtype no shipped variant uses, declared in a copy
of variants.yaml from existing building blocks, renders, verifies (compile + audit, gfx942 and
gfx950) and passes its own generated boundary test on the emulator, with no Python change.

Two such dtypes, each in its own copy:
- `fp16s`: fp16 operands (fp16's MFMAs) WITH fp8's per-token x per-channel scales applied in the
  epilogue. The README's "Adding a dtype" walks through the same YAML.
- `int4_f16`: fp16 activations with int4_bf16's group-wise int4 weights (packed, per_group
  bf16 scales of 32, dequantized in registers into the activation type: here fp16, for fp16's
  MFMAs), the issue's own example.
Every property of each exists today; the combinations do not.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT, checkout_env


@dataclass(frozen=True)
class Example:
    dtype: str  # its name
    yaml: str  # the dtypes: entry
    blocks: str  # its matrix blocks: one per_expert FlyDSL variant per stage
    # per variant: the generated boundary-test ids run on the emulator
    cases: dict[str, list[str]]
    # text every new module holds (its MFMAs and building blocks, from the dtype's properties)
    markers: tuple[str, ...]
    # (shipped dtype, text the new module holds and its module does not): what the YAML changed
    twin: tuple[str, str]


FP16S = Example(
    "fp16s",
    # fp16 storage, torch dtypes and MFMAs, plus the two epilogue scales of fp8.
    """\
  # fp16s: fp16 operands with per-token x per-channel epilogue scales (tests/test_yaml_dtype.py)
  fp16s:
    activation: f16
    activation_bits: 16
    weight: f16
    weight_bits: 16
    packing: 1
    weight_layout: preshuffle_16x16
    scales:
      - {kind: per_token, dtype: float32, applied: epilogue}
      - {kind: per_channel, dtype: float32, applied: epilogue}
    accumulator: f32
    intermediate: float16
    torch_dtype:
      gfx942: {activation: float16, weight: float16}
      gfx950: {activation: float16, weight: float16}
    mfma:
      gfx942: {op: mfma_f32_16x16x16f16, k: 16, operand: f16, width: 4}
      gfx950: {op: mfma_f32_16x16x32_f16, k: 32, operand: f16, width: 8}
""",
    # Stage 1 (split_k 1: split-K partials apply no scales) and stage 2 (float32 output; its
    # mfma_per_load floor relaxed as for every shipped stage-2 block: one 16 B load feeds 1.33
    # MFMAs on gfx950).
    """\
  - dtype: fp16s
    addressing: per_expert
    stage: 1
    split_k: 1
  - dtype: fp16s
    addressing: per_expert
    stage: 2
    floors: {mfma_per_load: 1.3}
""",
    # The smallest case and one past the whole-tensor 4 GiB line (W1 4.12 GiB, W2 4.12 GiB);
    # for stage 1 also the guard past the variant's own line.
    {
        "moe_s1_fp16s_per_expert": [
            "test_boundary[inter=384-decode-emulator]",
            "test_boundary[inter=1408-decode-emulator]",
            "test_guard[inter=174784-E=2-decode]",
        ],
        "moe_s2_fp16s_per_expert": [
            "test_boundary[inter=384-decode-emulator]",
            "test_boundary[inter=2816-decode-emulator]",
        ],
    },
    ("mfma_f32_16x16x16f16", "mfma_f32_16x16x32_f16", "ActScale: fx.Tensor", "WScale: fx.Tensor"),
    ("fp16", "ActScale"),  # the scales came from `scales:` (fp16's modules take none)
)

INT4_F16 = Example(
    "int4_f16",
    # int4_bf16's packed weights and per-group scales, fp16's activations, torch dtype and MFMAs.
    """\
  # int4_f16: fp16 activations x int4 group-wise weights (tests/test_yaml_dtype.py)
  int4_f16:
    activation: f16
    activation_bits: 16
    weight: i4
    weight_bits: 4
    packing: 2
    weight_layout: preshuffle_16x16
    scales:
      - {kind: per_group, dtype: bfloat16, applied: weights, group: 32}
    accumulator: f32
    torch_dtype:
      gfx942: {activation: float16, weight: uint8}
      gfx950: {activation: float16, weight: uint8}
    mfma:
      gfx942: {op: mfma_f32_16x16x16f16, k: 16, operand: f16, width: 4}
      gfx950: {op: mfma_f32_16x16x32_f16, k: 32, operand: f16, width: 8}
""",
    # The default decode tile (K 128: one 16 B lane load of int4 is 32 values), the floors
    # int4_bf16's decode tile relaxes, for the same reasons (variants.yaml).
    """\
  - dtype: int4_f16
    addressing: per_expert
    stage: 1
    split_k: 1
    floors: {kib_in_flight: 3.5}
  - dtype: int4_f16
    addressing: per_expert
    stage: 2
    floors: {mfma_per_load: 1.3, kib_in_flight: 2.25}
""",
    # The smallest case and one past the whole-tensor line (W1 4.03 GiB at inter 5504, W2
    # 4.03 GiB at 11008), both stages.
    {
        "moe_s1_int4_f16_per_expert": [
            "test_boundary[inter=384-decode-emulator]",
            "test_boundary[inter=5504-decode-emulator]",
        ],
        "moe_s2_int4_f16_per_expert": [
            "test_boundary[inter=384-decode-emulator]",
            "test_boundary[inter=11008-decode-emulator]",
        ],
    },
    ("mfma_f32_16x16x16f16", "mfma_f32_16x16x32_f16", "dequant_int4", 'ACT_TYPE = "f16"'),
    ("int4_bf16", 'ACT_TYPE = "f16"'),  # dequantized into fp16, not int4_bf16's bf16
)


def _checkout_digest() -> str:
    """A hash of every tracked file of the real checkout (name and content) and of git status."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    h = hashlib.sha256()
    for name in filter(None, files):
        path = ROOT / os.fsdecode(name)
        h.update(name + b"\0" + (path.read_bytes() if path.is_file() else b"<absent>"))
    status = ["git", "status", "--porcelain", "--untracked-files=all"]
    h.update(subprocess.run(status, cwd=ROOT, capture_output=True, check=True).stdout)
    return h.hexdigest()


def _moegen(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "moegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=checkout_env(),
    )


def _names(cwd) -> set[str]:
    proc = _moegen("list", "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return {r["name"] for r in json.loads(proc.stdout)}


@pytest.mark.parametrize("ex", [FP16S, INT4_F16], ids=lambda ex: ex.dtype)
def test_new_dtype_by_yaml_alone(project_copy, ex):
    start = time.monotonic()
    before = _checkout_digest()
    shipped = _names(project_copy)
    names = set(ex.cases)
    assert not shipped & names

    spec = project_copy / "variants.yaml"
    text = spec.read_text()
    assert f"\n  {ex.dtype}:" not in text
    head, sep, tail = text.partition("\n# Every variant must tile")  # end of `dtypes:`
    assert sep, "variants.yaml changed shape: `dtypes:` no longer ends before the shapes comment"
    text = head + "\n" + ex.yaml.rstrip("\n") + sep + tail
    head, sep, tail = text.partition("  # Triton: the same kernels")  # end of the FlyDSL blocks
    assert sep, "variants.yaml changed shape: no Triton section after the FlyDSL blocks"
    spec.write_text(head + ex.blocks + sep + tail)

    # The edit adds exactly the two variants.
    assert _names(project_copy) == shipped | names

    proc = _moegen("render", cwd=project_copy)
    assert proc.returncode == 0, proc.stderr
    generated = project_copy / "generated"
    twin_dtype, new_only = ex.twin
    for name in names:
        assert (generated / "tests" / f"test_{name}.py").is_file()
        source = (generated / "flydsl" / f"{name}.py").read_text()
        # the MFMAs and building blocks came from the dtype's properties ...
        assert all(m in source for m in ex.markers), [m for m in ex.markers if m not in source]
        # ... and differ from the shipped twin's (the same variant of the dtype it borrows from)
        twin = ROOT / "generated" / "flydsl" / f"{name.replace(ex.dtype, twin_dtype)}.py"
        assert new_only in source and new_only not in twin.read_text()

    # Compile + audit on both archs at every shipped shape (the copy has no ISA_COUNTERS.md
    # yet: --write-counters writes the new rows into the copy's generated/).
    proc = _moegen(
        "verify",
        "-k",
        f"moe_s?_{ex.dtype}_per_expert",
        "--jobs",
        "1",
        "--write-counters",
        cwd=project_copy,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8/8 passed, 0 failed" in proc.stdout, proc.stdout
    rows = {tuple(ln.split()[:3]): ln.split() for ln in proc.stdout.splitlines() if ex.dtype in ln}
    for name in names:
        for arch in ("gfx942", "gfx950"):
            for shape in ("small", "production"):
                row = rows.get((name, arch, shape))
                assert row is not None, proc.stdout
                assert row[4] == "per_expert" and row[-1] == "ok", row

    # Their generated boundary tests, run inside the copy on the emulator.
    env = checkout_env()
    env["PYTHONPATH"] = os.pathsep.join([str(project_copy), env["PYTHONPATH"]])
    ids = [
        f"generated/tests/test_{name}.py::{case}" for name, cases in ex.cases.items() for case in cases
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ids],
        capture_output=True,
        text=True,
        cwd=project_copy,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(ids)} passed" in proc.stdout, proc.stdout[-4000:]
    runs = sum("::test_boundary[" in case for case in ids)
    assert proc.stdout.count("ok: 0 of ") == runs, proc.stdout[-4000:]  # each per-row verdict

    assert _checkout_digest() == before, "the test edited the real checkout, not only its copy"
    elapsed = time.monotonic() - start
    print(f"yaml-only dtype {ex.dtype}: render + verify + {len(ids)} emulator cases in {elapsed:.0f} s")
