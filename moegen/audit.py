"""Audit compiled FlyDSL kernels: how the expert weights are addressed, and risky i32 math.

Addressing of the weight tensor (the caller names it: ordinal among the kernel's global pointer
parameters, i.e. its fx.Tensor parameters in declaration order, or the parameter's name):

    per_expert    the weight's buffer resource (V#) base is the weight pointer advanced by a
                  64-bit offset that depends on a value loaded from memory (the expert id), so
                  the 32-bit per-lane offsets only span one expert.
    whole_tensor  the V# base is the weight pointer itself and a loaded value (the expert id)
                  reaches the 32-bit offset of an access through it.
    undetermined  neither: e.g. the expert offset was lost (rocdl.get_buffer_rsrc on an already
                  offset buffer pointer drops it), or the weight is not read through a V#.

Two independent views decide it and must agree (a disagreement is a failure):
    mlir  LLVM-dialect MLIR (*_reconcile_unrealized_casts.mlir): SSA def-use chains.
    isa   final AMDGCN assembly (*_final_isa.s): SGPR provenance + load taint through the code.

Hazard: an i64 value made by sign/zero-extending an i32 product (mul/shl, possibly under
add/or/sub) that feeds an address (GEP index, V# base, inttoptr). The product wraps at 2^31
before it is widened. Every such widening is reported with its source location; with bounds
(max values of loaded tensor elements and block/thread ids) the product's range is evaluated.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from moegen.compile import ISA_GLOB, code_object_metadata, kernel_body, parse_python

MLIR_GLOB = "*_reconcile_unrealized_casts.mlir"
I32_MIN, I32_MAX, U32_MAX = -(2**31), 2**31 - 1, 2**32 - 1


class Addressing(str, Enum):
    WHOLE_TENSOR = "whole_tensor"
    PER_EXPERT = "per_expert"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class ViewVerdict:
    """The addressing one view of the compiled kernel shows, with the lines that show it."""

    view: str  # "mlir" | "isa"
    addressing: Addressing
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class WideningHazard:
    """An i32 product widened to i64 that feeds an address."""

    value: str  # the i64 SSA value, e.g. "%29"
    line: str  # the sext/zext line
    product: str  # the i32 llvm.mul/shl line it widens
    location: str  # source location of the widening, "file:line:col <- caller:line:col"
    sinks: tuple[str, ...]  # address ops it reaches
    max_abs: int | None  # largest |value| of the widened operand under the bounds, if known
    can_overflow: bool | None  # None: not enough bounds to tell
    value_range: tuple[int, int] | None = None  # [lo, hi] of the widened i32 operand
    # the product's operands: "%12 = <op> in [lo, hi]" (range "?" where unknown)
    factors: tuple[str, ...] = ()

    def describe(self) -> str:
        """What overflows, for a failure message: the widening, the i32 product and its
        operands with their ranges, the widened range against the i32 limit, where, and
        the fix."""
        limit = U32_MAX if "llvm.zext" in self.line else I32_MAX
        rng = "unknown" if self.value_range is None else "[{}, {}]".format(*self.value_range)
        return (
            f"i32 product widened to i64 overflows: {self.line.split('  [')[0]} widens "
            f"{self.product.split('  [')[0]}, operands: "
            + "; ".join(self.factors)
            + f". The widened value ranges over {rng}, past the i32 limit {limit}. "
            f"Computed at {self.location}; widen the factors to i64 before multiplying "
            "(fx.Int64(a) * fx.Int64(b))"
        )


@dataclass(frozen=True)
class KernelAudit:
    kernel: str
    dump_dir: Path
    weight_ptr: int
    weight_name: str | None
    expected: Addressing | None
    addressing: Addressing
    views: tuple[ViewVerdict, ...]
    hazards: tuple[WideningHazard, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No view conflict, the expected addressing (if given) holds, no known overflow."""
        return not self.problems


# ------------------------------------------------------------------------------- MLIR parsing


@dataclass
class _Op:
    result: str
    name: str  # op name, or the intrinsic name for llvm.call_intrinsic, or "blockarg"
    operands: list[str]
    text: str
    loc: str


_LOAD_OP = re.compile(r"load")
_CASTS = ("llvm.addrspacecast", "llvm.bitcast", "llvm.inttoptr", "llvm.ptrtoint")
_SSA = re.compile(r"%[\w.$-]+")


def _split_top(text: str) -> list[str]:
    """Split at commas not nested in (), <>, {}, []."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch in "(<{[") - (ch in ")>}]")
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


class MlirKernel:
    """The gpu.kernel llvm.func of an LLVM-dialect MLIR module, as SSA defs and uses."""

    def __init__(self, text: str, name: str | None = None) -> None:
        self._aliases = dict(re.findall(r"^(#loc\d*) = loc\((.*)\)$", text, re.M))
        lines = text.splitlines()
        head = next(
            i
            for i, ln in enumerate(lines)
            if ln.lstrip().startswith("llvm.func @")
            and "gpu.kernel" in ln
            and (name is None or ln.lstrip().startswith(f"llvm.func @{name}("))
        )
        header = lines[head]
        self.name = re.match(r"\s*llvm\.func @([\w.$-]+)\(", header).group(1)
        sig = header[header.index("(") + 1 : header.index(") attributes")]
        self.params = [p.split(":")[0].strip() for p in _split_top(sig)]
        self.ptr_params = [
            p.split(":")[0].strip() for p in _split_top(sig) if re.search(r":\s*!llvm\.ptr<1>", p)
        ]
        indent = len(header) - len(header.lstrip())
        self.defs: dict[str, _Op] = {}
        self.ops: list[_Op] = []
        block_args: dict[str, list[str]] = {}
        edges: list[tuple[str, list[str]]] = []
        self.source = ""
        for ln in lines[head + 1 :]:
            if ln.startswith(" " * indent + "}") and len(ln) - len(ln.lstrip()) == indent:
                self.source = self.resolve_loc(ln[ln.find("loc(") + 4 : ln.rfind(")")])
                break
            stripped = ln.strip()
            if stripped.startswith("^bb"):
                label = stripped.split("(")[0].split(":")[0]
                block_args[label] = re.findall(r"(%[\w.$-]+): ", stripped)
                continue
            loc_at = stripped.rfind(" loc(")
            body, loc = (
                (stripped[:loc_at], stripped[loc_at + 5 : -1]) if loc_at >= 0 else (stripped, "")
            )
            m = re.match(r"(%[\w.$-]+)(?::\d+)? = (.*)", body)
            result, rhs = (m.group(1), m.group(2)) if m else (f"!{len(self.ops)}", body)
            intrinsic = re.match(r'llvm\.call_intrinsic "([\w.]+)"', rhs)
            op = _Op(
                result=result,
                name=intrinsic.group(1) if intrinsic else rhs.split(" ")[0],
                operands=_SSA.findall(rhs),
                text=stripped,
                loc=loc,
            )
            self.ops.append(op)
            self.defs[result] = op
            for label, args in re.findall(r"(\^bb\d+)\(([^:)]*)", rhs):
                edges.append((label, _SSA.findall(args)))
        for label, passed in edges:
            for arg, value in zip(block_args.get(label, []), passed):
                self.defs.setdefault(arg, _Op(arg, "blockarg", [], f"{arg} (block argument)", ""))
                self.defs[arg].operands.append(value)
        self.users: dict[str, list[_Op]] = {}
        for op in self.defs.values():
            for v in op.operands:
                self.users.setdefault(v, []).append(op)

    def resolve_loc(self, loc: str, depth: int = 0) -> str:
        """ "file":12:3 / #loc7 / callsite(#a at #b) -> "file:12:3 <- caller:4:5"."""
        loc = loc.strip()
        if depth > 50:
            return loc
        if loc.startswith("#loc"):
            return self.resolve_loc(self._aliases.get(loc, loc), depth + 1)
        m = re.fullmatch(r'"([^"]*)":(\d+):(\d+)', loc)
        if m:
            return f"{m.group(1)}:{m.group(2)}:{m.group(3)}"
        m = re.fullmatch(r"callsite\((.*) at (.*)\)", loc)
        if m:
            return f"{self.resolve_loc(m.group(1), depth + 1)} <- {self.resolve_loc(m.group(2), depth + 1)}"
        m = re.fullmatch(r"loc\((.*)\)", loc)
        return self.resolve_loc(m.group(1), depth + 1) if m else loc

    def depends_on_load(self, value: str) -> bool:
        seen, stack = set(), [value]
        while stack:
            v = stack.pop()
            if v in seen or v not in self.defs:
                continue
            seen.add(v)
            op = self.defs[v]
            if _LOAD_OP.search(op.name):
                return True
            stack.extend(op.operands)
        return False

    def pointer_root(self, value: str) -> tuple[str, list[str]]:
        """Walk a pointer back through casts and GEPs; return (root value, 64-bit offsets)."""
        offsets: list[str] = []
        while value in self.defs:
            op = self.defs[value]
            if op.name == "llvm.getelementptr":
                offsets += [v for v in op.operands[1:] if "i64" in op.text]
            elif op.name == "llvm.add" and ": i64" in op.text:
                a, b = op.operands[:2]
                if "ptrtoint" not in self._chain(a) and "ptrtoint" in self._chain(b):
                    a, b = b, a
                offsets.append(b)
                value = a
                continue
            elif op.name not in _CASTS and op.name != "rocdl.make.buffer.rsrc":
                break
            value = op.operands[0]
        return value, offsets

    def _chain(self, value: str) -> str:
        op = self.defs.get(value)
        return op.name if op else ""

    def line_of(self, op: _Op) -> str:
        return f"{op.text.split(' loc(')[0]}  [{self.resolve_loc(op.loc) if op.loc else '?'}]"


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


def _rsrc_accesses(mlir: MlirKernel, rsrc: str) -> list[tuple[_Op, bool]]:
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


# ----------------------------------------------------------------------- widened i32 products

_PRODUCT_PATH = ("llvm.add", "llvm.or", "llvm.sub")
_PRODUCTS = ("llvm.mul", "llvm.shl")
_I64_PATH = (
    "llvm.mul",
    "llvm.add",
    "llvm.shl",
    "llvm.or",
    "llvm.sub",
    "llvm.sext",
    "llvm.zext",
)


def find_widenings(
    mlir: MlirKernel,
    bounds: Mapping[str, int] | None = None,
    tensor_names: list[str] | None = None,
) -> list[WideningHazard]:
    """Every i64 value sext/zext'ed from an i32 product that reaches an address."""
    bounds = bounds or {}
    hazards = []
    for op in mlir.ops:
        if op.name not in ("llvm.sext", "llvm.zext") or ": i32 to i64" not in op.text:
            continue
        product = _find_product(mlir, op.operands[0])
        if product is None:
            continue
        sinks = _address_sinks(mlir, op.result)
        if not sinks:
            continue
        ranges = _Range(mlir, bounds, tensor_names)
        rng = ranges.of(op.operands[0])
        if rng is None:
            max_abs, overflow = None, None
        else:
            lo, hi = rng
            max_abs = max(abs(lo), abs(hi))
            limit_lo, limit_hi = (I32_MIN, I32_MAX) if op.name == "llvm.sext" else (0, U32_MAX)
            overflow = lo < limit_lo or hi > limit_hi
        hazards.append(
            WideningHazard(
                value=op.result,
                line=mlir.line_of(op),
                product=mlir.line_of(product),
                location=mlir.resolve_loc(op.loc),
                sinks=tuple(mlir.line_of(s) for s in sinks),
                max_abs=max_abs,
                can_overflow=overflow,
                value_range=rng,
                factors=tuple(_describe_operand(mlir, ranges, v) for v in product.operands[:2]),
            )
        )
    return hazards


def _describe_operand(mlir: MlirKernel, ranges: "_Range", value: str) -> str:
    """ "%12 = llvm.mlir.constant(37748736 : i32) : i32 in [37748736, 37748736]"."""
    op = mlir.defs.get(value)
    text = op.text.split(" loc(")[0] if op else value
    rng = ranges.of(value)
    where = "?" if rng is None else f"[{rng[0]}, {rng[1]}]"
    origin = _loaded_from(mlir, value, ranges.names)
    return f"{text} in {where}" + (f" (loaded from {origin})" if origin else "")


def _loaded_from(mlir: MlirKernel, value: str, names: list[str]) -> str | None:
    """The kernel parameter a value was loaded from, when it is a load through a pointer
    rooted at one (e.g. the expert id from SortedExpertIds); `names` are the tensor
    parameters' source names, when known."""
    op = mlir.defs.get(value)
    if op is None or not _LOAD_OP.search(op.name) or not op.operands:
        return None
    root, _ = mlir.pointer_root(op.operands[0])
    if root not in mlir.ptr_params:
        return None
    i = mlir.ptr_params.index(root)
    return names[i] if i < len(names) else f"pointer parameter #{i} ({root})"


def _find_product(mlir: MlirKernel, value: str) -> _Op | None:
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        op = mlir.defs.get(v)
        if v in seen or op is None or ": i32" not in op.text:
            continue
        seen.add(v)
        if op.name in _PRODUCTS:
            return op
        if op.name in _PRODUCT_PATH:
            stack.extend(op.operands)
    return None


def _address_sinks(mlir: MlirKernel, value: str) -> list[_Op]:
    sinks, stack, seen = [], [value], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        for user in mlir.users.get(v, []):
            if user.name == "llvm.getelementptr" and user.operands[0] != v:
                sinks.append(user)
            elif user.name in ("rocdl.make.buffer.rsrc", "llvm.inttoptr"):
                sinks.append(user)
            elif user.name in _I64_PATH and ": i64" in user.text:
                stack.append(user.result)
    return sinks


class _Range:
    """Exact integer range of an i32 SSA value from constants, thread-id ranges and bounds.

    bounds keys: "block_idx.x|y|z", "thread_idx.x|y|z" (max id) and tensor parameter names or
    "ptr<N>" (max element value loaded from that tensor)."""

    def __init__(self, mlir: MlirKernel, bounds: Mapping[str, int], names: list[str] | None):
        self.mlir, self.bounds, self.names = mlir, bounds, names or []
        self._busy: set[str] = set()

    def of(self, v: str) -> tuple[int, int] | None:
        op = self.mlir.defs.get(v)
        if op is None or v in self._busy:
            return None
        self._busy.add(v)
        try:
            return self._eval(op)
        finally:
            self._busy.discard(v)

    def _bound(self, key: str) -> tuple[int, int] | None:
        return (0, self.bounds[key]) if key in self.bounds else None

    def _eval(self, op: _Op) -> tuple[int, int] | None:
        const = re.search(r"llvm\.mlir\.constant\((-?\d+) : i\d+\)", op.text)
        if const:
            return int(const.group(1)), int(const.group(1))
        ids = re.match(r"rocdl\.(workgroup|workitem)\.id\.([xyz])", op.name)
        if ids:
            key = ("block_idx." if ids.group(1) == "workgroup" else "thread_idx.") + ids.group(2)
            rng = re.search(r"range <i32, (\d+), (\d+)>", op.text)
            return self._bound(key) or ((int(rng.group(1)), int(rng.group(2)) - 1) if rng else None)
        if _LOAD_OP.search(op.name) and op.operands:
            root, _ = self.mlir.pointer_root(op.operands[0])
            if root in self.mlir.ptr_params:
                i = self.mlir.ptr_params.index(root)
                name = self.names[i] if i < len(self.names) else None
                return self._bound(name or "") or self._bound(f"ptr<{i}>")
            return None
        args = [self.of(a) for a in op.operands]
        if op.name == "blockarg" or op.name == "llvm.select":
            args = args[1:] if op.name == "llvm.select" else args
            if not args or any(a is None for a in args):
                return None
            return min(a[0] for a in args), max(a[1] for a in args)
        if op.name in ("llvm.sext", "llvm.zext", "llvm.trunc", "llvm.freeze"):
            return args[0] if args else None
        if len(args) != 2 or args[0] is None or args[1] is None:
            return None
        (a0, a1), (b0, b1) = args
        if op.name == "llvm.mul":
            c = [a0 * b0, a0 * b1, a1 * b0, a1 * b1]
            return min(c), max(c)
        if op.name == "llvm.add" or (op.name == "llvm.or" and min(a0, b0) >= 0):
            return a0 + b0, a1 + b1
        if op.name == "llvm.sub":
            return a0 - b1, a1 - b0
        if op.name == "llvm.shl" and b0 == b1 and 0 <= b0 < 64:
            return a0 << b0, a1 << b0
        if op.name in ("llvm.and",) and b0 == b1 >= 0 and a0 >= 0:
            return 0, min(a1, b0)
        if op.name in ("llvm.srem", "llvm.urem") and b0 == b1 > 0:
            return (0 if a0 >= 0 else -(b0 - 1)), b0 - 1
        if op.name in ("llvm.sdiv", "llvm.udiv", "llvm.lshr", "llvm.ashr") and b0 == b1 > 0:
            d = b0 if "div" in op.name else 2**b0
            return a0 // d, a1 // d
        return None


# -------------------------------------------------------------------------------- ISA view


@dataclass(frozen=True)
class _Sgpr:
    """What an SGPR/VGPR holds: kernarg byte offsets it came from, whether a loaded value or a
    64-bit add (s_add_u32/s_addc_u32) went into it."""

    kernarg: frozenset[int] = frozenset()
    loaded: bool = False
    added64: bool = False

    def __or__(self, other: _Sgpr) -> _Sgpr:
        return _Sgpr(
            self.kernarg | other.kernarg,
            self.loaded or other.loaded,
            self.added64 or other.added64,
        )


_REG = re.compile(r"(?<!\w)([sva])(?:\[(\d+):(\d+)\]|(\d+)\b)|\b(vcc|scc|exec|m0)\b")
_NO_DEST = (
    "s_waitcnt",
    "s_nop",
    "s_endpgm",
    "s_cbranch",
    "s_branch",
    "s_barrier",
    "s_setprio",
    "s_sleep",
    "s_sendmsg",
    "s_dcache",
    "s_icache",
    "s_trap",
    "buffer_store",
    "global_store",
    "flat_store",
    "scratch_store",
    "ds_write",
    "ds_store",
    "buffer_atomic",
    "global_atomic",
    "s_set_gpr_idx",
    "s_setreg",
)
_MEM_LOAD = (
    "buffer_load",
    "global_load",
    "flat_load",
    "scratch_load",
    "ds_read",
    "ds_load",
    "s_buffer_load",
)


def _regs(token: str) -> list[str]:
    out = []
    for kind, lo, hi, single, special in _REG.findall(token):
        if special:
            out.append(special)
        elif single:
            out.append(f"{kind}{single}")
        else:
            out += [f"{kind}{i}" for i in range(int(lo), int(hi) + 1)]
    return out


def classify_isa(isa: str, kernel: str, weight_ptr: int) -> ViewVerdict:
    """Addressing of global pointer #weight_ptr from the final ISA of `kernel`.

    make.buffer.rsrc writes `base_hi & 0xffff` into V# word 1, so the V# of every buffer access
    is tied to a kernarg pointer through the SGPR that `s_and_b32 sX, sY, 0xffff` produced.
    """
    meta = next(m for m in code_object_metadata(isa) if m[".name"] == kernel)
    globals_ = [a[".offset"] for a in meta[".args"] if a.get(".value_kind") == "global_buffer"]
    weight_hi = globals_[weight_ptr] + 4
    directive = dict(re.findall(r"^\s*\.amdhsa_(user_sgpr_\w+)\s+(\d+)", isa, re.M))
    kernarg_sgpr = sum(
        n * int(directive.get(f"user_sgpr_{key}", 0))
        for key, n in (
            ("private_segment_buffer", 4),
            ("dispatch_ptr", 2),
            ("queue_ptr", 2),
        )
    )
    state: dict[str, _Sgpr] = {}
    preload = int(directive.get("user_sgpr_kernarg_preload_length", 0))
    first = int(directive.get("user_sgpr_kernarg_preload_offset", 0))
    for i in range(preload):
        state[f"s{kernarg_sgpr + 2 + i}"] = _Sgpr(frozenset({first * 4 + 4 * i}))
    word1: dict[str, _Sgpr] = {}
    per_expert, whole, other = [], [], []
    for line in kernel_body(isa, kernel):
        mn, _, rest = line.partition(" ")
        ops = [t.strip() for t in re.split(r",(?![^\[]*\])", rest)] if rest else []
        if mn.startswith(("buffer_load", "buffer_store", "buffer_atomic")) and len(ops) >= 4:
            quad = _regs(ops[2])
            origin = word1.get(quad[1]) if len(quad) == 4 else None
            if origin is None or weight_hi not in origin.kernarg:
                pass
            elif origin.added64 and origin.loaded:
                per_expert.append(f"V# base_hi <- s_addc_u32 of a loaded value: {line}")
            else:
                offsets = _regs(ops[1]) if "offen" in ops[3] or "idxen" in ops[3] else []
                offsets += _regs(ops[3].split()[0])
                if not origin.added64 and any(state.get(r, _Sgpr()).loaded for r in offsets):
                    whole.append(f"V# base = weight kernarg, loaded value in offset: {line}")
                else:
                    other.append(f"V# of the weight without expert-dependent base/offset: {line}")
        dests, sources = _dests_sources(mn, ops)
        if mn.startswith(("s_load", "s_buffer_load")) or mn.startswith(_MEM_LOAD):
            base = _regs(ops[1]) if len(ops) > 1 else []
            kernarg = mn.startswith("s_load") and base == [
                f"s{kernarg_sgpr}",
                f"s{kernarg_sgpr + 1}",
            ]
            off = (
                int(ops[2], 0)
                if kernarg and len(ops) > 2 and re.fullmatch(r"(0x)?[0-9a-f]+", ops[2])
                else None
            )
            for i, r in enumerate(dests):
                state[r] = (
                    _Sgpr(frozenset({off + 4 * i})) if off is not None else _Sgpr(loaded=True)
                )
                word1.pop(r, None)
            continue
        value = _Sgpr()
        for r in sources:
            value = value | state.get(r, _Sgpr())
        if mn in ("s_add_u32", "s_addc_u32", "s_sub_u32", "s_subb_u32"):
            value = _Sgpr(value.kernarg, value.loaded, True)
        for r in dests:
            state[r] = value
            word1.pop(r, None)
        if mn == "s_and_b32" and len(ops) == 3 and ops[2].lower() in ("0xffff", "65535"):
            word1[dests[0]] = value
        elif mn == "s_mov_b32" and len(ops) == 2 and ops[1] in word1:
            word1[dests[0]] = word1[ops[1]]
    if per_expert:
        return ViewVerdict("isa", Addressing.PER_EXPERT, tuple(per_expert[:3]))
    if whole:
        return ViewVerdict("isa", Addressing.WHOLE_TENSOR, tuple(whole[:3]))
    evidence = other[:3] or [f"no buffer access through a V# built from kernarg+{weight_hi - 4}"]
    return ViewVerdict("isa", Addressing.UNDETERMINED, tuple(evidence))


# Instructions whose destination is also an input: the SOPK forms (`s_mulk_i32 s14, 0x1800` is
# s14 = s14 * 0x1800, which LLVM picks when a multiplier is not a power of two, e.g. the
# production model_dim 6144) and multiply-accumulates. Dropping that input would lose the
# expert id on its way into a whole_tensor offset.
_READS_DEST = ("s_addk_", "s_mulk_", "s_cmovk_", "v_mac_", "v_fmac_")


def _dests_sources(mn: str, ops: list[str]) -> tuple[list[str], list[str]]:
    """(registers written, registers read) by one instruction, for the taint walk."""
    if mn.startswith(_NO_DEST):
        return [], [r for t in ops for r in _regs(t)]
    if mn.startswith(("s_cmp", "s_bitcmp")):
        return ["scc"], [r for t in ops for r in _regs(t)]
    if mn.startswith("v_cmp") and mn.endswith("_e32"):
        return ["vcc"], [r for t in ops for r in _regs(t)]
    if not ops:
        return [], []
    sources = [r for t in ops[1:] for r in _regs(t)]
    dests = _regs(ops[0])
    if mn.startswith(_READS_DEST):
        sources += dests
    if mn.startswith(("s_addc", "s_subb", "s_cselect")):
        sources.append("scc")
    if mn.startswith("s_") and not mn.startswith(("s_mov", "s_cselect", "s_load", "s_buffer_load")):
        dests = dests + ["scc"]
    return dests, sources


# -------------------------------------------------------------------------------- the audit


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
    bounds: maxima for the range evaluation of widened products (see _Range).
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
