"""The kernel function of an LLVM-dialect MLIR module as SSA defs and uses: a small parser
shared by the audits (no backend specifics)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class Op:
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
        self.defs: dict[str, Op] = {}
        self.ops: list[Op] = []
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
            op = Op(
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
                self.defs.setdefault(arg, Op(arg, "blockarg", [], f"{arg} (block argument)", ""))
                self.defs[arg].operands.append(value)
        self.users: dict[str, list[Op]] = {}
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

    def line_of(self, op: Op) -> str:
        return f"{op.text.split(' loc(')[0]}  [{self.resolve_loc(op.loc) if op.loc else '?'}]"
