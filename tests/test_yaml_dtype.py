"""Adding a dtype is a YAML edit (issue 11): a dtype no shipped variant uses, declared in a copy
of variants.yaml from existing building blocks, renders, verifies (compile + audit, gfx942 and
gfx950) and passes its own generated boundary test on the emulator, with no Python change.

The new dtype, `fp16s`, is fp16 operands (fp16's MFMAs) WITH fp8's per-token x per-channel
scales applied in the epilogue: every property exists today, the combination does not. The
README's "Adding a dtype" walks through the same YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

from tests.conftest import ROOT, checkout_env

NAMES = ("moe_s1_fp16s_per_expert", "moe_s2_fp16s_per_expert")

# The dtype: fp16 storage, torch dtypes and MFMAs, plus the two epilogue scales of fp8.
DTYPE = """\
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
"""
# Two matrix blocks, one FlyDSL variant each (per_expert, the default decode tile): stage 1
# (split_k 1: split-K partials apply no scales) and stage 2 (float32 output; its mfma_per_load
# floor relaxed as for every shipped stage-2 block: one 16 B load feeds 1.33 MFMAs on gfx950).
BLOCK = """\
  - dtype: fp16s
    addressing: per_expert
    stage: 1
    split_k: 1
  - dtype: fp16s
    addressing: per_expert
    stage: 2
    floors: {mfma_per_load: 1.3}
"""
# Per variant: the smallest case and one past the whole-tensor 4 GiB line (W1 4.12 GiB, W2
# 4.12 GiB) on the emulator; for stage 1 also the guard past the variant's own line.
CASES = {
    "moe_s1_fp16s_per_expert": [
        "test_boundary[inter=384-decode-emulator]",
        "test_boundary[inter=1408-decode-emulator]",
        "test_guard[inter=174784-E=2-decode]",
    ],
    "moe_s2_fp16s_per_expert": [
        "test_boundary[inter=384-decode-emulator]",
        "test_boundary[inter=2816-decode-emulator]",
    ],
}


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


def test_new_dtype_by_yaml_alone(project_copy):
    start = time.monotonic()
    before = _checkout_digest()
    shipped = _names(project_copy)
    assert not shipped & set(NAMES)

    spec = project_copy / "variants.yaml"
    text = spec.read_text()
    assert "\n  fp16s:" not in text
    head, sep, tail = text.partition("\n# Every variant must tile")  # end of `dtypes:`
    assert sep, "variants.yaml changed shape: `dtypes:` no longer ends before the shapes comment"
    text = head + "\n" + DTYPE.rstrip("\n") + sep + tail
    head, sep, tail = text.partition("  # Triton: the same kernels")  # end of the FlyDSL blocks
    assert sep, "variants.yaml changed shape: no Triton section after the FlyDSL blocks"
    spec.write_text(head + BLOCK + sep + tail)

    # The edit adds exactly the two variants.
    assert _names(project_copy) == shipped | set(NAMES)

    proc = _moegen("render", cwd=project_copy)
    assert proc.returncode == 0, proc.stderr
    generated = project_copy / "generated"
    for name in NAMES:
        assert (generated / "tests" / f"test_{name}.py").is_file()
        source = (generated / "flydsl" / f"{name}.py").read_text()
        assert "mfma_f32_16x16x16f16" in source and "mfma_f32_16x16x32_f16" in source
        # the epilogue scales came from the dtype's `scales:` (shipped 16-bit modules have none)
        assert "ActScale: fx.Tensor" in source and "WScale: fx.Tensor" in source
        shipped_twin = ROOT / "generated" / "flydsl" / f"{name.replace('fp16s', 'fp16')}.py"
        assert "ActScale" not in shipped_twin.read_text()

    # Compile + audit on both archs at every shipped shape (the copy has no ISA_COUNTERS.md
    # yet: --write-counters writes the new rows into the copy's generated/).
    proc = _moegen(
        "verify",
        "-k",
        "moe_s?_fp16s_per_expert",
        "--jobs",
        "1",
        "--write-counters",
        cwd=project_copy,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8/8 passed, 0 failed" in proc.stdout, proc.stdout
    rows = {tuple(ln.split()[:3]): ln.split() for ln in proc.stdout.splitlines() if "fp16s" in ln}
    for name in NAMES:
        for arch in ("gfx942", "gfx950"):
            for shape in ("small", "production"):
                row = rows.get((name, arch, shape))
                assert row is not None, proc.stdout
                assert row[4] == "per_expert" and row[-1] == "ok", row

    # Their generated boundary tests, run inside the copy on the emulator.
    env = checkout_env()
    env["PYTHONPATH"] = os.pathsep.join([str(project_copy), env["PYTHONPATH"]])
    ids = [
        f"generated/tests/test_{name}.py::{case}" for name, cases in CASES.items() for case in cases
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
    print(f"yaml-only dtype: render + verify + {len(ids)} emulator cases in {elapsed:.0f} s")
