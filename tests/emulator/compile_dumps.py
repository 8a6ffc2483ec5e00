"""Compile the test kernels of kernels.py and kernels_sync.py for one arch and keep their final
LLVM-dialect MLIR.

Run as a script (an LLVM fatal error aborts the interpreter, so callers isolate it in a
subprocess): ``python compile_dumps.py ARCH OUT_DIR``. Each specialization (see SPECS) lands in
``OUT_DIR/<spec>.mlir`` (and its ISA in ``OUT_DIR/<spec>.s``). The caller passes moegen.backends.flydsl.toolchain.compile_env(ARCH) as the environment.
"""

import glob
import os
import shutil
import sys
from pathlib import Path

GEMM_SHAPE = {"M": 32, "N": 128, "K": 256}


def specs(arch: str) -> dict:
    """spec name -> (launcher name, args builder); the args only carry dtypes and ranks."""
    import torch

    i32 = lambda n: torch.zeros(n, dtype=torch.int32)  # noqa: E731
    f32 = lambda n: torch.zeros(n, dtype=torch.float32)  # noqa: E731
    out = {
        "buf_copy": ("launch_buf_copy", lambda: (i32(64), i32(64), 0, 0, 0)),
        "buf_soffset": ("launch_buf_soffset", lambda: (i32(64), i32(68), 0, 0, 0, 0, 0)),
        "rsrc_flags": ("launch_rsrc_flags", lambda: (i32(64), i32(64), 0)),
        "s_load": ("launch_s_load", lambda: (i32(64), i32(64), 0, 0)),
        "diverge": ("launch_diverge", lambda: (i32(256),)),
        "atomics_f32": ("launch_atomics", lambda: (f32(8), f32(512), "f32")),
        "atomics_f32_lanes": ("launch_atomics_f32_lanes", lambda: (f32(64), f32(64), f32(64))),
        "atomics_cmpswap": ("launch_atomics", lambda: (i32(1), i32(64), "cmpswap")),
        "atomics_pk_f16": ("launch_atomics", lambda: (i32(2), i32(64), "f16")),
        "convert": ("launch_convert", lambda: (f32(64), i32(64), i32(64), f32(640))),
        "cross_lane": ("launch_cross_lane", lambda: (i32(384), "ok")),
        "ballot_partial": ("launch_cross_lane", lambda: (i32(128), "partial")),
        "unknown_ops": ("launch_cross_lane", lambda: (i32(64), "unknown")),
        "operand_split": ("launch_operand_split", lambda: (i32(256), i32(512))),
        "int4_dequant": (
            "launch_int4_dequant",
            lambda: (i32(256), torch.zeros(64, dtype=torch.bfloat16), i32(1024)),
        ),
        "int4_unpack_i8": ("launch_int4_unpack_i8", lambda: (i32(128), i32(256))),
    }
    for variant in ("static", "race", "raw_barrier", "dynamic"):
        out[f"lds_{variant}"] = ("launch_lds", lambda v=variant: (i32(512), 0, v))
    from kernels import MFMA_SHAPES

    gfx950_only = ("16x16x32_bf16", "16x16x32_f16")
    for shape in MFMA_SHAPES:
        if arch == "gfx942" and shape in gfx950_only:
            continue
        out[f"mfma_{shape}"] = (
            "launch_mfma",
            lambda s=shape: (i32(1), i32(1), i32(1), i32(1), s),
        )
    from kernels_sync import FENCE_VARIANTS, PIPELINE_VARIANTS

    for variant in FENCE_VARIANTS:
        out[f"fence_{variant}"] = ("launch_lds_fenced", lambda v=variant: (i32(256), v))
    for variant in PIPELINE_VARIANTS:
        out[f"pipeline_{variant}"] = (
            "launch_pipeline",
            lambda v=variant: (i32(1024), i32(1024), 1, v),
        )
    for signed in (False, True):
        name = "grid_signed" if signed else "grid_unsigned"
        out[name] = ("launch_grid_div", lambda s=signed: (i32(64), 1, 1, s))
    out["grid_shape"] = ("launch_grid_shape", lambda: (i32(64), 1))
    if arch == "gfx950":
        out["atomics_pk_bf16"] = ("launch_atomics", lambda: (i32(2), i32(64), "bf16"))
    kstep = 32 if arch == "gfx950" else 16
    s = GEMM_SHAPE
    bf = lambda *shape: torch.zeros(*shape, dtype=torch.bfloat16)  # noqa: E731
    out["gemm"] = (
        "launch_gemm",
        lambda: (
            bf(s["M"], s["K"]),
            bf(s["N"], s["K"]),
            torch.zeros(s["M"], s["N"]),
            s["M"],
            s["N"],
            s["K"],
            kstep,
        ),
    )
    return out


def main(arch: str, out_dir: str) -> None:
    os.environ["FLYDSL_DUMP_IR"] = (
        "1"  # the caller's env is moegen.backends.flydsl.toolchain.compile_env(arch)
    )
    sys.path.insert(0, str(Path(__file__).parent))
    import kernels
    import kernels_sync

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (launcher, args) in specs(arch).items():
        work = out / f"_{name}"
        os.environ["FLYDSL_DUMP_DIR"] = str(work)  # read by FlyDSL at every compile
        (getattr(kernels, launcher, None) or getattr(kernels_sync, launcher))(*args())
        (dump,) = glob.glob(str(work / "*" / "*_reconcile_unrealized_casts.mlir"))
        shutil.copy(dump, out / f"{name}.mlir")
        (isa,) = glob.glob(str(work / "*" / "*_final_isa.s"))
        shutil.copy(isa, out / f"{name}.s")
        shutil.rmtree(work)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
