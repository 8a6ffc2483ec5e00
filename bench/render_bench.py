"""Render speed on a synthetic spec of many variants (default 500), with the shipped templates.

Prints: cold render (empty black cache, empty output), no-op re-render, and --check.
usage: python bench/render_bench.py [--variants N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def synthetic_spec(n: int) -> str:
    """The shipped dtypes/archs and shapes, and n explicit variants (tiles vary)."""
    spec = yaml.safe_load((ROOT / "variants.yaml").read_text())
    # a small shape every synthetic tile divides (tile n up to 256, split_k x tile k up to 512)
    spec["shapes"] = {
        "small": {"experts": 4, "model_dim": 1536, "inter": 768, "topk": 2},
        "production": spec["shapes"]["production"],
    }
    spec.pop("matrix", None)
    kinds = [(1, 1), (1, 2), (1, 4), (2, 1)]
    entries = []
    for (m, nn, k), dt, addr, (stage, kb) in itertools.product(
        itertools.product((16, 32, 48, 64, 80, 96, 112, 128), (64, 128, 192, 256), (64, 128)),
        ("bf16", "fp16"),
        ("whole_tensor", "per_expert"),
        kinds,
    ):
        entries.append(
            {
                "dtype": dt,
                "addressing": addr,
                "stage": stage,
                "split_k": kb,
                "tile": {"m": m, "n": nn, "k": k},
            }
        )
    if n > len(entries):
        sys.exit(f"at most {len(entries)} synthetic variants")
    spec["variants"] = entries[:n]
    return yaml.safe_dump(spec, sort_keys=False)


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return dt, proc.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variants", type=int, default=500)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR instead of a temp dir")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="moegen-bench-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "templates", work / "templates")
    (work / "variants.yaml").write_text(synthetic_spec(args.variants))
    env = dict(os.environ, MOEGEN_CACHE_DIR=str(work / "cache"))
    moegen = [sys.executable, "-m", "moegen"]
    cold, cold_line = timed(moegen + ["render"], work, env)
    noop, noop_line = timed(moegen + ["render"], work, env)
    check, check_line = timed(moegen + ["render", "--check"], work, env)
    files = sum(1 for _ in (work / "generated").rglob("*.py"))
    print(f"machine: {os.cpu_count()} cores; {args.variants} variants -> {files} Python files")
    print(f"cold render        {cold:7.2f} s   ({cold_line})")
    print(f"no-op re-render    {noop:7.2f} s   ({noop_line})")
    print(f"render --check     {check:7.2f} s   ({check_line})")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
