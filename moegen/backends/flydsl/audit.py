"""Audit a compiled FlyDSL kernel's dump directory: which way its weight tensor is addressed
(from the MLIR, where FlyDSL builds each buffer resource, and from the ISA), and every i32
product widened into an address."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

from moegen.backends.flydsl.compile import ISA_GLOB, parse_python
from moegen.verify.isa import classify_isa
from moegen.verify.mlir import _CASTS, MlirKernel, Op
from moegen.verify.verdicts import Addressing, KernelAudit, ViewVerdict
from moegen.verify.widenings import find_widenings

MLIR_GLOB = "*_reconcile_unrealized_casts.mlir"


def kernel_source_params(mlir: MlirKernel) -> list[str] | None:
    """Names of the kernel's fx.Tensor parameters in order (each one global pointer arg),
    read from the Python source the kernel's MLIR location points at; None if unavailable.
    """
    m = re.match(r"(.*):(\d+):\d+$", mlir.source.split(" <- ")[0])
    if not m or not Path(m.group(1)).is_file():
        return None
    line = int(m.group(2))
    tree = parse_python(Path(m.group(1)))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and line in (
            node.lineno,
            *(d.lineno for d in node.decorator_list),
        ):
            names = [
                a.arg
                for a in node.args.args
                if a.annotation is not None and ast.unparse(a.annotation).endswith("Tensor")
            ]
            return names if len(names) == len(mlir.ptr_params) else None
    return None


def classify_mlir(mlir: MlirKernel, weight_ptr: int) -> ViewVerdict:
    """Addressing of global pointer #weight_ptr from the LLVM-dialect MLIR."""
    weight = mlir.ptr_params[weight_ptr]
    per_expert, whole, other = [], [], []
    for op in mlir.ops:
        if op.name != "rocdl.make.buffer.rsrc":
            continue
        root, offsets = mlir.pointer_root(op.operands[0])
        if root != weight:
            continue
        dynamic = [v for v in offsets if mlir.depends_on_load(v)]
        if dynamic:
            per_expert.append(f"V# base = {weight} + loaded 64-bit offset: {mlir.line_of(op)}")
            continue
        loaded_uses = [u for u in _rsrc_accesses(mlir, op.result) if u[1]]
        if not offsets and loaded_uses:
            whole.append(f"V# base = {weight}: {mlir.line_of(op)}")
            whole += [f"  loaded value in offset: {mlir.line_of(u[0])}" for u in loaded_uses[:2]]
        else:
            other.append(f"V# without expert-dependent base or offset: {mlir.line_of(op)}")
    if per_expert:
        return ViewVerdict("mlir", Addressing.PER_EXPERT, tuple(per_expert))
    if whole:
        return ViewVerdict("mlir", Addressing.WHOLE_TENSOR, tuple(whole))
    evidence = other or [f"no buffer resource is built from {weight}"]
    return ViewVerdict("mlir", Addressing.UNDETERMINED, tuple(evidence))


def _rsrc_accesses(mlir: MlirKernel, rsrc: str) -> list[tuple[Op, bool]]:
    """Ops accessing memory through `rsrc` (following casts), each with whether an offset
    operand (any operand after the resource) depends on a loaded value."""
    out, stack, seen = [], [rsrc], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        for user in mlir.users.get(v, []):
            if user.name in _CASTS:
                stack.append(user.result)
            elif v in user.operands:
                after = user.operands[user.operands.index(v) + 1 :]
                out.append((user, any(mlir.depends_on_load(a) for a in after)))
    return out


def audit_dump_dir(
    dump_dir: Path,
    *,
    weight: int | str,
    expected: Addressing | str | None = None,
    bounds: Mapping[str, int] | None = None,
    kernels: str = "*",
) -> list[KernelAudit]:
    """Audit every kernel dumped under `dump_dir` (one <kernel>_<n>/ per kernel).

    weight: ordinal of the weight among the kernel's global pointer (fx.Tensor) parameters,
    or the parameter name (mapped through the kernel's Python source).
    expected: the addressing the variant declares; a different verdict is a problem.
    bounds: maxima for the range evaluation of widened products (see IntRange).
    A problem is recorded for a view conflict, a wrong addressing, and a widening that
    provably overflows under `bounds`; widenings of unknown range are listed, not failed.
    """
    expected = Addressing(expected) if expected is not None else None
    audits = []
    for kdir in sorted(p for p in Path(dump_dir).glob(kernels) if p.is_dir()):
        mlir_files, isa_files = sorted(kdir.glob(MLIR_GLOB)), sorted(kdir.glob(ISA_GLOB))
        if not mlir_files or not isa_files:
            continue
        mlir = MlirKernel(mlir_files[-1].read_text())
        names = kernel_source_params(mlir)
        if isinstance(weight, str):
            if names is None or weight not in names:
                raise ValueError(
                    f"{mlir.name}: cannot map weight {weight!r} to a pointer argument "
                    f"(tensor parameters: {names}); pass its ordinal instead"
                )
            ordinal = names.index(weight)
        else:
            ordinal = weight
        if not 0 <= ordinal < len(mlir.ptr_params):
            raise ValueError(f"{mlir.name} has {len(mlir.ptr_params)} pointer args, no #{ordinal}")
        views = (
            classify_mlir(mlir, ordinal),
            classify_isa(isa_files[-1].read_text(), mlir.name, ordinal),
        )
        hazards = tuple(find_widenings(mlir, bounds, names))
        problems = []
        kinds = {v.addressing for v in views}
        addressing = views[0].addressing
        if len(kinds) > 1:
            problems.append(
                "views disagree: " + ", ".join(f"{v.view}={v.addressing.value}" for v in views)
            )
            addressing = Addressing.UNDETERMINED
        elif expected is not None and addressing != expected:
            problems.append(f"declared {expected.value} but compiled code is {addressing.value}")
        problems += [h.describe() for h in hazards if h.can_overflow]
        audits.append(
            KernelAudit(
                kernel=mlir.name,
                dump_dir=kdir,
                weight_ptr=ordinal,
                weight_name=names[ordinal] if names else None,
                expected=expected,
                addressing=addressing,
                views=views,
                hazards=hazards,
                problems=tuple(problems),
            )
        )
    return audits
