"""The Triton compile entry: compiles one variant's kernel for one arch on the CPU (no GPU
needed: triton.compile with an explicit GPUTarget), at every (shape, tile config) of a JSON job,
and writes each result and its dumps (LLVM IR, and AMDGCN or PTX) under the job's dump_dir.

    python -m moegen.backends.triton.entry JOB.json

moegen.backends.triton.compile writes the job and reads `result.json` back; one subprocess per
(variant, arch) keeps a compiler crash from taking `moegen verify` down.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

I32_MAX = 2**31 - 1
# torch dtype -> Triton's pointer element type in a signature
POINTEE = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "float32": "fp32",
    "int32": "i32",
    "float8_e4m3fn": "fp8e4nv",
    "float8_e4m3fnuz": "fp8e4b8",
}
TENSORS = ("act", "W", "SortedTokenIds", "SortedWeights", "SortedExpertIds", "NumValidIds", "Out")


def signature(module, arch: str) -> dict[str, str]:
    """The kernel's parameters and their Triton types for `arch`'s dtypes."""
    v = module.VARIANT
    act, weight = module.ACT_DTYPES[arch], module.WEIGHT_DTYPES[arch]
    out = v["out_dtype"] if v["stage"] == 1 and v["split_k"] == 1 else "float32"
    types = [act, weight, "int32", "float32", "int32", "int32", out]
    names = ["X" if v["stage"] == 1 else "A2", *TENSORS[1:]]
    for scale in v.get("scales", ()):  # the kernel's trailing scale tensors, in declared order
        names.append("ActScale" if scale["operand"] == "activation" else "WScale")
        types.append(scale["dtype"])
    sig = {n: "*" + POINTEE[t] for n, t in zip(names, types)}
    sig.update(tokens="i32", topk="i32", n_stride="i32")
    consts = ["MODEL_DIM", "INTER"] + (["K_SLICE"] if v["stage"] == 1 else [])
    consts += ["BLOCK_M", "BLOCK_N", "BLOCK_K", "EVEN_K", "DOT_UPCAST"]
    sig.update({c: "constexpr" for c in consts})
    return sig


def tensor_bytes(module, case: dict, arch: str) -> list[int]:
    """Storage bytes of the 7 tensor operands at this case (what Triton's AMD specialization
    compares with 2 GiB to allow buffer ops)."""
    import torch

    v = module.VARIANT
    e, d, i, t, k = (case[n] for n in ("experts", "model_dim", "inter", "tokens", "topk"))
    ab = torch.empty(0, dtype=getattr(torch, module.ACT_DTYPES[arch])).element_size()
    wb = torch.empty(0, dtype=getattr(torch, module.WEIGHT_DTYPES[arch])).element_size()
    rows = t * k + e * case["config"]["block_m"] - k
    ob = torch.empty(0, dtype=getattr(torch, v["out_dtype"])).element_size()
    n = 2 * i if v["stage"] == 1 else d  # weight rows per expert (per_channel scale [E, n])
    scales = [
        4 * (t if v["stage"] == 1 else t * k) if s["kind"] == "per_token" else 4 * e * n
        for s in v.get("scales", ())
    ]
    if v["stage"] == 1:
        out = t * k * (2 * i * 4 if v["split_k"] > 1 else i * ob)
        return [t * d * ab, e * 2 * i * d * wb, 4 * rows, 4 * rows, 4 * rows, 4, out, *scales]
    return [t * k * i * ab, e * d * i * wb, 4 * rows, 4 * rows, 4 * rows, 4, t * d * 4, *scales]


def compile_case(module, arch: str, target, case: dict, out_dir: Path) -> dict:
    import triton
    from triton.compiler import ASTSource

    v = module.VARIANT
    cfg = case["config"]
    consts = dict(
        MODEL_DIM=case["model_dim"],
        INTER=case["inter"],
        BLOCK_M=cfg["block_m"],
        BLOCK_N=cfg["block_n"],
        BLOCK_K=cfg["block_k"],
        DOT_UPCAST=False,
    )
    k_dim = case["model_dim"] // v["split_k"] if v["stage"] == 1 else case["inter"]
    consts["EVEN_K"] = k_dim % cfg["block_k"] == 0
    if v["stage"] == 1:
        consts["K_SLICE"] = k_dim
    attrs = {}
    if target.backend == "hip":  # buffer ops only on tensors Triton knows are < 2 GiB
        sizes = tensor_bytes(module, case, arch)
        attrs = {(n,): [["tt.pointer_range", 32]] for n, b in enumerate(sizes) if b <= I32_MAX}
    kernel = getattr(module, v["name"] + "_kernel")
    start = time.perf_counter()
    compiled = triton.compile(
        ASTSource(kernel, signature(module, arch), consts, attrs),
        target=target,
        options={"num_warps": cfg["warps"], "num_stages": cfg["stages"]},
    )
    files = {}
    for kind in ("llir", "amdgcn", "ptx"):
        if kind in compiled.asm:
            path = out_dir / f"{case['label']}.{kind}"
            path.write_text(compiled.asm[kind])
            files[kind] = str(path)
    return {
        "shared": compiled.metadata.shared,
        "compile_s": round(time.perf_counter() - start, 2),
        "files": files,
        "pointer_range_32": sorted(n for (n,) in attrs),
    }


def main(argv: list[str]) -> int:
    from triton.backends.compiler import GPUTarget

    job = json.loads(Path(argv[0]).read_text())
    out_dir = Path(job["dump_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, job["root"])
    module = importlib.import_module(job["module"])
    target = GPUTarget(*job["target"])
    results = []
    for case in job["cases"]:
        try:
            results.append(
                dict(case, ok=True, **compile_case(module, job["arch"], target, case, out_dir))
            )
        except Exception as exc:  # a compile error is this case's result, not the job's end
            tail = traceback.format_exc().strip().splitlines()[-1]
            results.append(dict(case, ok=False, error=f"{type(exc).__name__}: {tail}"))
    (out_dir / "result.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
