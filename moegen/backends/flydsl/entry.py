"""The compile entry: `python -m moegen.backends.flydsl.entry JOB.json` runs in a fresh
interpreter under FlyDSL's COMPILE_ONLY=1, imports one module and makes the kernel launches
the job describes, which trace, lower, link and dump without running anything.

A job (a JSON object, written by moegen.backends.flydsl.compile.compile_target) names
`module` (a file) and `call` (a function in it), and `kind`, what to do with that function:

    call      call it without arguments (a test kernel's own compile function)
    prepare   it is a generated module's prepare(): build CPU torch.empty operands for
              job["operands"] (shape only, never touched, so a 9 GiB weight costs nothing),
              route them with moe_sorting, and call every launcher of the LaunchPlan it returns
    launcher  it is one flyc.jit launcher: call it once with torch.empty tensors of
              job["args"] ([shape, dtype] each) and job["constexprs"]

The import and the call are timed; the times go to stdout on one line after TIMING_TAG.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moegen.runtime.modules import load_module

TIMING_TAG = "MOEGEN_COMPILE_TIMING "
KINDS = ("call", "prepare", "launcher")


def plan_operands(params: Mapping[str, Any]) -> tuple[Any, ...]:
    """CPU torch.empty activations/weights and the routing tensors of one compile."""
    import torch

    from moegen.runtime import routing

    e, d, i, t, k = (params[n] for n in ("experts", "model_dim", "inter", "tokens", "topk"))
    act, weight = getattr(torch, params["act_dtype"]), getattr(torch, params["weight_dtype"])
    pack = params.get("weight_pack", 1)  # packed weights store K / pack elements per row
    if params["stage"] == 1:
        a, w = torch.empty(t, d, dtype=act), torch.empty(e, 2 * i, d // pack, dtype=weight)
    else:
        a, w = torch.empty(t * k, i, dtype=act), torch.empty(e, d, i // pack, dtype=weight)
    # Every expert gets rows (distinct experts per token), so every code path is traced.
    topk_ids = (torch.arange(t)[:, None] + torch.arange(k)[None, :]) % e
    topk_weights = torch.full((t, k), 1.0 / k)
    return (a, w, *routing.moe_sorting(topk_ids, topk_weights, e, params["tile_m"]))


def run_job(job: Mapping[str, Any], function: Any) -> None:
    """Make the launches `job` describes through `function` (see the module docstring)."""
    kind = job["kind"]
    if kind == "call":
        function()
    elif kind == "prepare":
        operands = job["operands"]
        args = plan_operands(operands)
        scales = {}
        if operands.get("variant"):  # a scaled dtype's prepare() also takes its scale tensors
            from moegen.runtime import launch

            scales = launch.empty_scales(operands["variant"], args[0], args[1])
        plan = function(*args, topk=operands["topk"], **scales)
        for call in plan.kernels:
            call.launcher(*call.args, **call.constexprs)
    elif kind == "launcher":
        import torch

        args = [torch.empty(shape, dtype=getattr(torch, dtype)) for shape, dtype in job["args"]]
        function(*args, **job["constexprs"])
    else:
        raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(KINDS)})")


def main(argv: list[str] | None = None) -> int:
    (job_path,) = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(job_path).read_text())
    t0 = time.perf_counter()
    module = load_module(job["module"])
    t1 = time.perf_counter()
    run_job(job, getattr(module, job["call"]))
    t2 = time.perf_counter()
    print(TIMING_TAG + json.dumps({"import_s": t1 - t0, "compile_s": t2 - t1}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
