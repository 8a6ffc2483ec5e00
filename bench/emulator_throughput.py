"""Emulator throughput on a small grouped GEMM: wave-MFMAs per second and bytes moved per second.

The GEMM is generated stage 1 (moe_s1_bf16_per_expert: gate/up projection + SiLU) at
E=4, model_dim=512, inter=256, 64 tokens, topk 2, on gfx942 (16x16x16 MFMA) and gfx950
(16x16x32). The compile is cached beforehand and not timed; the reported numbers cover one
full-grid launch (moegen.emulator.measure).

    python bench/emulator_throughput.py
"""

from __future__ import annotations

from pathlib import Path

from moegen.harness import execute
from moegen.emulator import Emulator, measure

ROOT = Path(__file__).resolve().parents[1]
VARIANT = "moe_s1_bf16_per_expert"
SHAPE = dict(experts=4, model_dim=512, inter=256, tokens=64, topk=2)


def main() -> None:
    module = execute.load_module(ROOT / "generated" / "flydsl" / f"{VARIANT}.py")
    print(f"{VARIANT} {SHAPE}")
    for arch in ("gfx942", "gfx950"):
        problem = execute.make_case(module, arch=arch, **SHAPE)
        plan = problem.plan()
        (call,) = plan.kernels
        (mlir,) = execute.compile_calls([(call, arch)])
        emu = Emulator(mlir, arch=arch)
        (kernel,) = emu.kernel_names
        for step in plan.pre:
            step.fn()
        rate = measure(emu, kernel, list(call.args))
        for step in plan.post:
            step.fn()
        print(
            f"{arch}: {rate.mfma_per_s:,.0f} wave-MFMA/s, {rate.bytes_per_s / 1e6:,.1f} MB/s "
            f"(cos_dist {problem.cos_dist(plan.result):.1e}; {rate})"
        )


if __name__ == "__main__":
    main()
