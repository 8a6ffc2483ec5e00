"""Compile and audit the Triton variants on the CPU, for every declared arch (NVIDIA sm90 and
AMD gfx942/gfx950 alike: triton.compile takes the target explicitly, no GPU or ROCm install is
needed; Triton's wheel carries the LLVM and the linker for both).

Each (variant, arch) compiles in its own subprocess (moegen.backends.triton.entry) at every
shape of variants.yaml and every tile config of the variant, with Triton's AMD buffer-op
specialization applied as its runtime would (tensors of <= 2**31 - 1 bytes only). Then:

- the weight-addressing audit (every target) reads the LLVM IR: where the expert id loaded from
  SortedExpertIds is widened to i64 BEFORE any multiply, the weight base is 64-bit per expert
  (per_expert); where it is multiplied in i32 first, the offset is an i32 over the whole tensor
  (whole_tensor). The verdict must be the declared addressing;
- on AMD targets, the shared AMDGCN view (moegen.verify.isa): code-object metadata (scratch,
  spills), the loads that reach the weight (buffer ops only where the weight is < 2 GiB), and
  isa.classify_isa's verdict, reported as it is (it reads FlyDSL's V# construction);
- the shared memory a config needs must fit the arch (SHARED_BYTES).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moegen.core.vocabulary import TOKEN_BITS  # noqa: F401  (documents the routing the job uses)

# Shared memory (LDS) one workgroup may use, bytes: H100/H200 227 KiB; MI300 64 KiB; MI355 160 KiB.
SHARED_BYTES = {"sm90": 232448, "gfx942": 65536, "gfx950": 163840}
ROOT = Path(__file__).resolve().parents[3]


def gpu_target(arch: str, vendor: str) -> list:
    """GPUTarget arguments for an arch: ("cuda", 90, 32) for sm90, ("hip", "gfx942", 64)."""
    if vendor == "nvidia":
        return ["cuda", int(arch.removeprefix("sm")), 32]
    return ["hip", arch, 64]


@dataclass(frozen=True)
class TritonJob:
    """One (variant, arch): its cases (shape x tile config) and where the dumps go."""

    variant: str
    module: str
    arch: str
    vendor: str
    addressing: str
    cases: tuple[Mapping[str, Any], ...]
    dump_dir: Path


@dataclass
class CaseResult:
    job: TritonJob
    case: Mapping[str, Any]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def plan(
    variants: Sequence[Any], archs: Sequence[str], shapes: Sequence[str], work: Path
) -> list[TritonJob]:
    """A job per Triton variant and declared arch (kept if in `archs`, all if empty), with a
    case per shape (kept if in `shapes`) and tile config."""
    jobs = []
    for v in variants:
        for arch in v.archs:
            if archs and arch not in archs:
                continue
            cases = []
            for shape in v.shapes:
                if shapes and shape.name not in shapes:
                    continue
                for c in v.configs:
                    cases.append(
                        {
                            "label": f"{shape.name}-t{c.tokens}",
                            "shape": shape.name,
                            "experts": shape.experts,
                            "model_dim": shape.model_dim,
                            "inter": shape.inter,
                            "topk": shape.topk,
                            "tokens": c.tokens,
                            "config": {
                                "block_m": c.m,
                                "block_n": c.n,
                                "block_k": c.k,
                                "warps": c.warps,
                                "stages": c.stages,
                            },
                        }
                    )
            jobs.append(
                TritonJob(
                    v.name,
                    v.module_import,
                    arch,
                    v.arch_vendors[arch],
                    v.addressing,
                    tuple(cases),
                    work / v.name / arch,
                )
            )
    return jobs


def _run_job(job: TritonJob) -> list[CaseResult]:
    job.dump_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "module": job.module,
        "arch": job.arch,
        "target": gpu_target(job.arch, job.vendor),
        "cases": list(job.cases),
        "dump_dir": str(job.dump_dir),
        "root": str(ROOT),
    }
    path = job.dump_dir / "job.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "moegen.backends.triton.entry", str(path)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        # compile, never interpret (a test process without a GPU has TRITON_INTERPRET=1)
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
    )
    result = job.dump_dir / "result.json"
    if proc.returncode != 0 or not result.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return [
            CaseResult(job, c, [f"compile process exit {proc.returncode}: {' | '.join(tail)}"])
            for c in job.cases
        ]
    return [_audit(job, r) for r in json.loads(result.read_text())]


def compile_many(jobs: Iterable[TritonJob], jobs_n: int | None = None) -> list[CaseResult]:
    """Run every job (jobs_n subprocesses at a time); results in input order."""
    jobs = list(jobs)
    with ThreadPoolExecutor(max_workers=max(1, jobs_n or 1)) as pool:
        return [r for rs in pool.map(_run_job, jobs) for r in rs]


# ---- the audit -------------------------------------------------------------------------------

_DEF = re.compile(r"^\s*(%[\w.]+) = (.*)$")
_ARGS = re.compile(r"^define .*?@[\w.]+\((.*)\)[^)]*\{", re.M)


def weight_addressing_llir(llir: str, expert_arg: int = 4) -> tuple[str, str]:
    """(addressing, evidence line) of the weight from a kernel's LLVM IR: follow the expert id
    loaded through pointer parameter #expert_arg (SortedExpertIds) and find its first use in
    arithmetic: a widening to i64 (per_expert) or an i32 multiply/shift (whole_tensor)."""
    m = _ARGS.search(llir)
    if not m:
        return "undetermined", "no kernel definition in the LLVM IR"
    params = re.findall(r"(%[\w.]+)(?=,|$)", m.group(1))
    if len(params) <= expert_arg:
        return "undetermined", f"the kernel has {len(params)} parameters"
    tainted = {params[expert_arg]}
    for line in llir[m.end() :].splitlines():
        d = _DEF.match(line)
        if not d:
            continue
        dst, rhs = d.groups()
        used = set(re.findall(r"%[\w.]+", rhs))
        if not used & tainted:
            continue
        op = rhs.split()[0]
        if op in ("getelementptr", "load", "extractelement", "bitcast", "freeze"):
            tainted.add(dst)  # the id itself, on its way out of memory
        elif op in ("sext", "zext") and "to i64" in rhs:
            return "per_expert", line.strip()
        elif op in ("mul", "shl") and re.match(r"(mul|shl)( nsw| nuw)* i32 ", rhs):
            return "whole_tensor", line.strip()
        else:
            tainted.add(dst)
    return "undetermined", "the expert id reaches no widening or i32 product"


def _amdgcn_notes(isa: str, kernel: str) -> tuple[list[str], list[str]]:
    """(problems, notes) of an AMDGCN dump: scratch and spills; the memory instructions used;
    and the shared ISA classifier's verdict on the weight (kernel pointer #1)."""
    from moegen.verify.isa import classify_isa, code_object_metadata

    problems, notes = [], []
    meta = next((m for m in code_object_metadata(isa) if m.get(".name") == kernel), None)
    if meta is None:
        return [f"no code-object metadata for {kernel}"], notes
    if meta.get(".private_segment_fixed_size", 0) or meta.get(".vgpr_spill_count", 0):
        problems.append(
            f"spills: {meta.get('.vgpr_spill_count', 0)} VGPRs, "
            f"{meta.get('.private_segment_fixed_size', 0)} bytes of scratch"
        )
    kinds = sorted(set(re.findall(r"^\s+((?:buffer|global)_(?:load|store|atomic))", isa, re.M)))
    notes.append("memory ops: " + ", ".join(kinds))
    verdict = classify_isa(isa, kernel, 1)
    notes.append(f"isa.classify_isa: {verdict.addressing.value} ({verdict.evidence[0][:80]})")
    return problems, notes


def _audit(job: TritonJob, r: Mapping[str, Any]) -> CaseResult:
    case = {
        k: r[k] for k in ("label", "shape", "experts", "model_dim", "inter", "tokens", "config")
    }
    res = CaseResult(job, case)
    if not r.get("ok"):
        res.problems.append(f"compile failed: {r.get('error')}")
        return res
    limit = SHARED_BYTES.get(job.arch)
    if limit is None:
        res.notes.append(f"no shared-memory limit known for {job.arch}")
    elif r["shared"] > limit:
        res.problems.append(
            f"needs {r['shared']:,} bytes of shared memory; {job.arch} has {limit:,} "
            "(declare a smaller config for this regime)"
        )
    found, evidence = weight_addressing_llir(Path(r["files"]["llir"]).read_text())
    if found == "whole_tensor" and job.addressing == "per_expert" and 1 in r["pointer_range_32"]:
        # Triton's AMD buffer-op rewrite folds the 64-bit expert base into i32 offsets when it
        # knows the weight is < 2 GiB (pointer_range 32): legal there, and only there.
        res.notes.append(f"weight < 2 GiB: Triton folded the expert base into i32: {evidence[:60]}")
    elif found != job.addressing:
        res.problems.append(f"weight addressing {found}, declared {job.addressing}: {evidence}")
    else:
        res.notes.append(f"weight addressing {found}: {evidence[:90]}")
    if "amdgcn" in r["files"]:
        problems, notes = _amdgcn_notes(
            Path(r["files"]["amdgcn"]).read_text(), job.variant + "_kernel"
        )
        res.problems += problems
        res.notes += notes
        if 1 not in r["pointer_range_32"]:
            res.notes.append("weight > 2 GiB: Triton keeps it on 64-bit global loads")
    return res


def report(results: Sequence[CaseResult]) -> str:
    """One line per (variant, arch, shape, config); the problems under each failure."""
    lines = []
    for r in results:
        c = r.case["config"]
        tile = f"m{c['block_m']}n{c['block_n']}k{c['block_k']}w{c['warps']}s{c['stages']}"
        status = "ok  " if r.ok else "FAIL"
        lines.append(f"{status} {r.job.variant:36} {r.job.arch:7} {r.case['label']:18} {tile}")
        lines += [f"       - {p}" for p in r.problems]
    failed = sum(not r.ok for r in results)
    lines.append(f"triton: {len(results) - failed} of {len(results)} compiles ok")
    return "\n".join(lines)


def audit_dump_dir(dump_dir: Path, *, weight: int | str, expected: str | None = None, bounds=None):
    """The LLVM-IR weight-addressing verdict of every kernel dumped under `dump_dir`."""
    out = []
    for llir in sorted(Path(dump_dir).rglob("*.llir")):
        found, evidence = weight_addressing_llir(llir.read_text())
        out.append((llir.name, found, evidence, expected in (None, found)))
    return out


def assert_compiles(name: str, arch: str, spec_path: str | Path, work: Path) -> None:
    """Compile and audit one (variant, arch) at every shape and tile config of the spec, as
    `moegen verify` does; AssertionError with the report when any fails."""
    from moegen.spec.expand import enumerate_variants

    variants = [v for v in enumerate_variants(spec_path) if v.name == name]
    if not variants:
        raise AssertionError(f"{spec_path} declares no variant {name!r}; run `moegen render`")
    results = compile_many(plan(variants, [arch], (), work), 1)
    if not results:
        raise AssertionError(f"{name} does not declare arch {arch}")
    if not all(r.ok for r in results):
        raise AssertionError(report(results))
