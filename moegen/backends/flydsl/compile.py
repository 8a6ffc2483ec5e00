"""Compile FlyDSL kernels for one AMD arch on a CPU-only machine, each in its own subprocess.

A target is "a Python module file + a function in it + what to do with it" (a job, see
moegen.backends.flydsl.entry: under COMPILE_ONLY=1 a FlyDSL launcher called with CPU tensors
traces, lowers and links a real code object, then returns). The job is written to a JSON data
file and run by the compile entry module in a fresh interpreter because LLVM fatal errors
abort the process, with FLYDSL_DUMP_IR=1 and FLYDSL_DUMP_DIR=<target.dump_dir>, so
every kernel leaves <dump_dir>/<kernel>_<n>/ with its MLIR stages, LLVM IR and final ISA.

A compile FAILS when the process exits non-zero or dies from a signal, when stderr has a line
matching ``^error:`` / ``LLVM ERROR`` / ``UNREACHABLE`` (FlyDSL 0.5 prints e.g. "error: no
libcall available for ftanh", exits 0 and emits an empty kernel), when no kernel ISA was
dumped, or when a kernel's ISA lacks an instruction the caller requires (a kernel whose compute
vanished still compiles "successfully" to little more than s_endpgm).

Register and spill counts come from the code-object metadata (the ``amdhsa.kernels`` YAML in
the dumped ``*_final_isa.s``).

Caches of compiled kernels (moegen.harness.execute for the emulator, moegen.verify.run for the audit) key
their entries with `source_fingerprint`: the SHA-256 of the module that defines the kernels and
of every moegen module it imports, transitively (`traced_sources`; today moegen.backends.flydsl.device,
whose device helpers are traced into every kernel, and moegen.runtime.launch with its imports), the
flydsl version and the FLYDSL_* settings that reach the compiler. Editing any of them is a miss.
Both caches live under `cache_home()`.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from moegen.backends.flydsl import entry as entry_module
from moegen.backends.flydsl.toolchain import check_arch, compile_env
from moegen.verify.isa import code_object_metadata, kernel_body

ISA_GLOB = "*_final_isa.s"
DUMP_SUFFIXES = (".mlir", ".ll", ".s")
STDERR_FAILURE = re.compile(r"^error:|LLVM ERROR|UNREACHABLE", re.MULTILINE)
_PACKAGE_ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "moegen"
# Where traced_sources resolves `moegen.*` imports (a test points it at a copy to edit one).
MOEGEN_DIR = Path(__file__).resolve().parents[2]
# FLYDSL_* variables that cannot change the code: set per compile by compile_env (dumps,
# target arch from the key's own arch) or only used on a GPU / by the autotuner.
_FLYDSL_ENV_IGNORED = frozenset(
    {
        "FLYDSL_DUMP_IR",
        "FLYDSL_DUMP_DIR",
        "FLYDSL_GPU_ARCH",
        "FLYDSL_RUNTIME_CACHE_DIR",
        "FLYDSL_AUTOTUNE_CACHE_DIR",
        "FLYDSL_ROCM_AGENT_TIMEOUT",
    }
)


@dataclass(frozen=True)
class CompileTarget:
    """One compile: the compile entry (moegen.backends.flydsl.entry) imports the module file
    `module` and runs a `kind` job through its function `entry` ("call": entry(); "prepare":
    the launch plan it returns for `job["operands"]`; "launcher": one launch with
    `job["args"]`, `job["constexprs"]`), for `arch`, dumping into `dump_dir`.

    required_isa: regexes matched at the start of instruction mnemonics (e.g. "buffer_load",
    "v_mfma"); every pattern must occur in every kernel whose name matches the glob key.
    Give a plain sequence to require the patterns of all kernels ("*").
    """

    module: Path
    entry: str
    arch: str
    dump_dir: Path
    required_isa: Mapping[str, Sequence[str]] | Sequence[str] = ()
    timeout_s: float = 600.0
    kind: str = "call"
    job: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_arch(self.arch)
        if not self.entry.isidentifier():
            raise ValueError(f"entry {self.entry!r} is not a Python identifier")
        if self.kind not in entry_module.KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(entry_module.KINDS)}")

    def job_data(self) -> dict[str, Any]:
        """The data file the compile entry runs (JSON-serialisable)."""
        return {
            **self.job,
            "module": str(Path(self.module).resolve()),
            "call": self.entry,
            "kind": self.kind,
        }

    @property
    def label(self) -> str:
        return f"{Path(self.module).stem}.{self.entry}[{self.arch}]"

    def requirements_for(self, kernel: str) -> tuple[str, ...]:
        """The mnemonic patterns `kernel` must contain."""
        if not isinstance(self.required_isa, Mapping):
            return tuple(self.required_isa)
        return tuple(
            pattern
            for glob, patterns in self.required_isa.items()
            if fnmatch.fnmatchcase(kernel, glob)
            for pattern in patterns
        )


@dataclass(frozen=True)
class KernelStats:
    """What the code object says about one compiled kernel."""

    name: str
    isa_path: Path
    vgpr_count: int
    sgpr_count: int
    agpr_count: int | None  # None on archs without AGPRs
    vgpr_spill_count: int
    sgpr_spill_count: int
    private_segment_size: int  # scratch bytes per lane (> 0 with spills or stack objects)
    group_segment_size: int  # static LDS bytes
    instruction_count: int
    mnemonics: frozenset[str]
    missing_isa: tuple[str, ...] = ()  # required patterns no instruction matched

    @property
    def spills(self) -> bool:
        return self.vgpr_spill_count > 0 or self.sgpr_spill_count > 0


@dataclass(frozen=True)
class CompileResult:
    """Outcome of one CompileTarget; `ok` is False iff `problems` is non-empty."""

    target: CompileTarget
    returncode: int | None  # None: timed out
    problems: tuple[str, ...]
    kernels: tuple[KernelStats, ...]
    stdout: str
    stderr: str
    wall_s: float  # whole subprocess, interpreter start to exit
    import_s: float | None  # importing the module (torch + flydsl + the kernels)
    compile_s: float | None  # the entry call: trace, lower, link (dumps roughly double it)
    stderr_errors: tuple[str, ...] = field(default=())
    cached: bool = False  # served by compile_target_cached from an earlier identical compile

    @property
    def ok(self) -> bool:
        return not self.problems

    def kernel(self, name: str) -> KernelStats:
        """The kernel called `name` (FlyDSL's symbol, e.g. "gemm_0", or without the "_0")."""
        for k in self.kernels:
            if name in (k.name, re.sub(r"_\d+$", "", k.name)):
                return k
        raise KeyError(f"{self.target.label} compiled no kernel {name!r}")


def _clear_dump_dir(dump_dir: Path) -> None:
    """Remove a previous dump, so a stale kernel cannot pass for a fresh one.

    Refuses (ValueError) to delete anything that does not look like FlyDSL dump output.
    """
    if not dump_dir.exists():
        return
    children = list(dump_dir.iterdir())
    for child in children:
        if not child.is_dir() or any(
            f.is_dir() or f.suffix not in DUMP_SUFFIXES for f in child.iterdir()
        ):
            raise ValueError(
                f"dump dir {dump_dir} holds {child.name!r}, which is not a FlyDSL dump; "
                "use an empty or dump-only directory"
            )
    for child in children:
        shutil.rmtree(child)


def read_kernel_stats(isa_path: Path) -> list[KernelStats]:
    """Register/spill/scratch counts and instruction mix of every kernel in one ISA dump."""
    isa = isa_path.read_text()
    stats = []
    for meta in code_object_metadata(isa):
        name = meta[".name"]
        body = kernel_body(isa, name)
        stats.append(
            KernelStats(
                name=name,
                isa_path=isa_path,
                vgpr_count=int(meta[".vgpr_count"]),
                sgpr_count=int(meta[".sgpr_count"]),
                agpr_count=int(meta[".agpr_count"]) if ".agpr_count" in meta else None,
                vgpr_spill_count=int(meta.get(".vgpr_spill_count", 0)),
                sgpr_spill_count=int(meta.get(".sgpr_spill_count", 0)),
                private_segment_size=int(meta.get(".private_segment_fixed_size", 0)),
                group_segment_size=int(meta.get(".group_segment_fixed_size", 0)),
                instruction_count=len(body),
                mnemonics=frozenset(line.split()[0] for line in body),
            )
        )
    return stats


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def compile_target(target: CompileTarget) -> CompileResult:
    """Compile one target in a fresh interpreter and check its output (never raises for a
    failed compile: the failure is in the result's `problems`)."""
    dump_dir = Path(target.dump_dir).resolve()
    _clear_dump_dir(dump_dir)
    env = compile_env(target.arch, dump_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    job_dir = tempfile.TemporaryDirectory(prefix="moegen-job-")
    job_file = Path(job_dir.name) / "job.json"
    job_file.write_text(json.dumps(target.job_data(), indent=1))
    argv = [sys.executable, "-m", entry_module.__name__, str(job_file)]
    problems: list[str] = []
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=target.timeout_s
        )
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = None
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        problems.append(f"timed out after {target.timeout_s:.0f} s")
    wall_s = time.perf_counter() - start
    job_dir.cleanup()

    timing: dict[str, float] = {}
    kept = []
    for line in stdout.splitlines():
        if line.startswith(entry_module.TIMING_TAG):
            timing = json.loads(line[len(entry_module.TIMING_TAG) :])
        else:
            kept.append(line)
    stdout = "\n".join(kept)

    if returncode is not None and returncode < 0:
        problems.append(f"killed by {_signal_name(returncode)}")
    elif returncode:
        problems.append(f"exited with status {returncode}")
    if returncode is not None and returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        problems.extend(f"stderr: {line}" for line in tail)
    errors = tuple(line for line in stderr.splitlines() if STDERR_FAILURE.search(line))
    if errors:
        unique = list(dict.fromkeys(errors))
        problems.append(f"compiler reported {len(errors)} error line(s): " + " | ".join(unique))

    kernels = _checked_kernels(target, dump_dir, problems)
    if returncode == 0 and not kernels:
        problems.append(f"no kernel ISA was dumped under {dump_dir} (did {target.entry}() launch?)")

    return CompileResult(
        target=target,
        returncode=returncode,
        problems=tuple(problems),
        kernels=tuple(kernels),
        stdout=stdout,
        stderr=stderr,
        wall_s=wall_s,
        import_s=timing.get("import_s"),
        compile_s=timing.get("compile_s"),
        stderr_errors=errors,
    )


def _checked_kernels(
    target: CompileTarget, dump_dir: Path, problems: list[str]
) -> list[KernelStats]:
    """Stats of every kernel dumped under `dump_dir`; a problem for each one lacking an
    instruction `target` requires."""
    kernels: list[KernelStats] = []
    for isa_path in sorted(dump_dir.glob(f"*/{ISA_GLOB}")):
        for stats in read_kernel_stats(isa_path):
            required = target.requirements_for(stats.name)
            missing = tuple(p for p in required if not any(re.match(p, m) for m in stats.mnemonics))
            stats = replace(stats, missing_isa=missing)
            kernels.append(stats)
            if stats.missing_isa:
                problems.append(
                    f"kernel {stats.name}: ISA has no instruction matching "
                    + ", ".join(repr(p) for p in stats.missing_isa)
                    + f" ({stats.instruction_count} instructions; compute lost?)"
                )
    return kernels


_RESULT_FILE = "result.json"


def compile_target_cached(target: CompileTarget, entry: Path) -> CompileResult:
    """compile_target, served from the cache directory `entry` when an earlier compile with
    the same key (the caller names `entry` by everything the code depends on, e.g. with
    source_fingerprint) succeeded there.

    Only ok compiles are stored (dump and timings, staged in a temporary directory renamed into
    place, so concurrent writers never expose half an entry). A hit re-reads the stored dump
    and re-checks the required ISA; its result's target.dump_dir is the entry's dump.
    """
    entry = Path(entry)
    if (entry / _RESULT_FILE).is_file():
        return _cached_result(target, entry)
    result = compile_target(target)
    if result.ok:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
        try:
            shutil.copytree(Path(target.dump_dir).resolve(), staged / "dump")
            timing = {"import_s": result.import_s, "compile_s": result.compile_s}
            (staged / _RESULT_FILE).write_text(json.dumps(timing))
            staged.rename(entry)
        except OSError:  # another process stored the same key first
            pass
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return result


def _cached_result(target: CompileTarget, entry: Path) -> CompileResult:
    """The CompileResult of a stored successful compile, its kernels re-checked."""
    timing = json.loads((entry / _RESULT_FILE).read_text())
    problems: list[str] = []
    kernels = _checked_kernels(target, entry / "dump", problems)
    if not kernels:
        problems.append(f"cache entry {entry} holds no kernel ISA; delete it and re-run")
    return CompileResult(
        target=replace(target, dump_dir=entry / "dump"),
        returncode=0,
        problems=tuple(problems),
        kernels=tuple(kernels),
        stdout="",
        stderr="",
        wall_s=0.0,
        import_s=timing.get("import_s"),
        compile_s=timing.get("compile_s"),
        cached=True,
    )


def compile_many(targets: Iterable[CompileTarget], jobs: int | None = None) -> list[CompileResult]:
    """Compile all targets, `jobs` subprocesses at a time (default: CPU count), in input order.

    A failing target does not stop the others. The toolchain is prepared once up front, so
    workers never race to create it and a missing linker fails fast with one clear error.
    """
    targets = list(targets)
    if not targets:
        return []
    compile_env(targets[0].arch)
    jobs = max(1, jobs or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=min(jobs, len(targets))) as pool:
        return list(pool.map(compile_target, targets))


# ---- what a compiled kernel depends on (cache keys) --------------------------------------


_PARSE_LOCK = threading.Lock()


def parse_python(path: Path) -> ast.Module:
    """ast.parse of a source file under _PARSE_LOCK: CPython 3.11's ast.parse is not thread-safe
    ("SystemError: AST constructor recursion depth mismatch"), and verify audits in threads."""
    source = path.read_text()
    with _PARSE_LOCK:
        return ast.parse(source, filename=str(path))


def _module_file(dotted: str) -> list[Path]:
    """The files Python executes to import `dotted` (a moegen module): each package's
    __init__.py on the way, then the module itself (absent names resolve to nothing)."""
    parts = dotted.split(".")[1:]
    files = [MOEGEN_DIR / "__init__.py"]
    for i in range(1, len(parts) + 1):
        base = MOEGEN_DIR.joinpath(*parts[:i])
        files += [base / "__init__.py", base.with_suffix(".py")]
    return [f for f in files if f.is_file()]


def _imported_names(path: Path) -> set[str]:
    """Dotted names of the moegen modules `path` imports anywhere in its body (also inside
    functions: a lazy import still runs while the kernel is traced)."""
    here = path.resolve().parent
    package = [PACKAGE]
    if here.is_relative_to(MOEGEN_DIR):  # relative imports resolve inside the package
        package += here.relative_to(MOEGEN_DIR).parts
    names: set[str] = set()
    for node in ast.walk(parse_python(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def traced_sources(module: Path) -> list[Path]:
    """`module` and every moegen source file it imports, transitively, in a stable order.

    A generated kernel module calls moegen.backends.flydsl.device helpers while FlyDSL traces it, so
    their code is part of every kernel; following the imports (instead of a fixed list) keeps
    a new helper module covered without anyone remembering to add it.
    """
    module = Path(module).resolve()
    seen: dict[Path, None] = {module: None}
    stack = [module]
    while stack:
        for name in sorted(_imported_names(stack.pop())):
            for f in _module_file(name):
                if f not in seen:
                    seen[f] = None
                    stack.append(f)
    return [module, *sorted(p for p in seen if p != module)]


def flydsl_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The FLYDSL_* environment variables that can change generated code (e.g.
    FLYDSL_COMPILE_OPT_LEVEL), from `env` (default os.environ)."""
    env = os.environ if env is None else env
    return {
        k: v
        for k, v in sorted(env.items())
        if k.startswith("FLYDSL_") and k not in _FLYDSL_ENV_IGNORED
    }


def source_fingerprint(module: Path) -> dict[str, object]:
    """What a kernel compiled from `module` depends on, besides its arch and arguments:
    {"sources": {name: sha256} for traced_sources(module), "flydsl": version,
    "flydsl_env": flydsl_settings()}. The module is named "module"; moegen files by their
    path inside the package, so the fingerprint does not depend on the checkout's location."""
    files = traced_sources(module)
    sources = {"module": hashlib.sha256(files[0].read_bytes()).hexdigest()}
    for f in files[1:]:
        name = f"{PACKAGE}/{f.relative_to(MOEGEN_DIR).as_posix()}"
        sources[name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return {
        "sources": sources,
        "flydsl": importlib.metadata.version("flydsl"),
        "flydsl_env": flydsl_settings(),
    }
