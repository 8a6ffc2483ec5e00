"""Make FlyDSL's CPU (compile-only) path work on a machine with no ROCm install.

FlyDSL links its code objects with ``$ROCM_PATH/llvm/bin/ld.lld`` and needs LLD >= 18 (code
object v6). PyPI's ``ziglang`` wheel ships a recent LLD, so moegen builds a private "ROCm root"
whose only content is a wrapper script at ``llvm/bin/ld.lld`` that runs
``<this python> -m ziglang ld.lld "$@"``. An existing ``ROCM_PATH`` with a working linker is
used as is.

The private root lives in ``$MOEGEN_ROCM_ROOT`` if set, else ``$XDG_CACHE_HOME/moegen/rocm``
(default ``~/.cache/moegen/rocm``). The wrapper is written to a temporary file and renamed into
place, so parallel processes creating it race harmlessly.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

MIN_LLD_MAJOR = 18
ROOT_ENV = "MOEGEN_ROCM_ROOT"
_ARCH_RE = re.compile(r"gfx[0-9a-f]{3,4}")


class ToolchainError(RuntimeError):
    """The linker is missing, too old, or the private ROCm root cannot be created."""


def default_root() -> Path:
    """Where the private ROCm root goes unless the caller names one."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "moegen" / "rocm"


def linker_path(root: Path) -> Path:
    """The linker FlyDSL uses for a ROCm root."""
    return Path(root) / "llvm" / "bin" / "ld.lld"


def wrapper_text(python: str = sys.executable) -> str:
    """The ld.lld wrapper script: LLD from the ziglang wheel of `python`."""
    return f'#!/bin/sh\nexec {shlex.quote(python)} -m ziglang ld.lld "$@"\n'


@functools.lru_cache(maxsize=None)
def lld_version(ld_lld: Path) -> tuple[int, ...] | None:
    """Version of an ld.lld executable (e.g. (22, 1, 8)), or None if it does not run."""
    try:
        proc = subprocess.run(
            [str(ld_lld), "--version"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"LLD (\d+)\.(\d+)(?:\.(\d+))?", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def _usable(root: Path) -> bool:
    version = lld_version(linker_path(root))
    return version is not None and version[0] >= MIN_LLD_MAJOR


def _write_atomically(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_private_root(root: Path | None = None) -> Path:
    """Create (or keep, if already current) the ziglang-backed ROCm root; return it.

    Raises ToolchainError if ziglang is not installed or its LLD is older than 18.
    """
    root = Path(root) if root is not None else default_root()
    if importlib.util.find_spec("ziglang") is None:
        raise ToolchainError(
            f"ziglang is not installed for {sys.executable}; it provides the ld.lld that "
            "FlyDSL needs to link code objects without ROCm. Install it with "
            f"`{sys.executable} -m pip install ziglang`, or point ROCM_PATH at a ROCm "
            f"install whose llvm/bin/ld.lld is LLD >= {MIN_LLD_MAJOR}."
        )
    ld_lld = linker_path(root)
    text = wrapper_text()
    try:
        current = ld_lld.read_text() if ld_lld.is_file() else None
        if current != text or not os.access(ld_lld, os.X_OK):
            _write_atomically(ld_lld, text, 0o755)
            lld_version.cache_clear()
    except OSError as exc:
        raise ToolchainError(f"cannot create the linker wrapper {ld_lld}: {exc}") from exc
    version = lld_version(ld_lld)
    if version is None or version[0] < MIN_LLD_MAJOR:
        found = "does not run" if version is None else "is LLD " + ".".join(map(str, version))
        raise ToolchainError(
            f"{ld_lld} (ziglang's LLD) {found}; FlyDSL needs LLD >= {MIN_LLD_MAJOR}. "
            "Upgrade it with `pip install -U ziglang`."
        )
    return root


def rocm_root(rocm_path: str | None = None) -> Path:
    """A ROCm root with a working ld.lld >= 18: `rocm_path` (default $ROCM_PATH) if it has one,
    else the private ziglang-backed root."""
    existing = rocm_path if rocm_path is not None else os.environ.get("ROCM_PATH")
    if existing and _usable(Path(existing)):
        return Path(existing)
    return create_private_root()


def check_arch(arch: str) -> str:
    """Return `arch` if it names an AMD GPU target like gfx942, else raise ValueError."""
    if not _ARCH_RE.fullmatch(arch):
        raise ValueError(f"arch {arch!r} is not an AMD GPU target name like 'gfx942'")
    return arch


def compile_env(
    arch: str,
    dump_dir: Path | None = None,
    *,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a compile-only FlyDSL run for `arch` (a copy of `base`, default os.environ).

    Sets both ARCH (compile target) and FLYDSL_GPU_ARCH (read by DSL helpers; unset it silently
    defaults to gfx942), COMPILE_ONLY=1 and ROCM_PATH. With `dump_dir`, every MLIR stage, the
    LLVM IR and the final ISA of each kernel are dumped under it (one dir per specialization).
    """
    env = dict(os.environ if base is None else base)
    env.update(
        COMPILE_ONLY="1",
        ARCH=check_arch(arch),
        FLYDSL_GPU_ARCH=arch,
        ROCM_PATH=str(rocm_root(env.get("ROCM_PATH", ""))),
    )
    if dump_dir is not None:
        env.update(FLYDSL_DUMP_IR="1", FLYDSL_DUMP_DIR=str(dump_dir))
    else:
        env.pop("FLYDSL_DUMP_IR", None)
        env.pop("FLYDSL_DUMP_DIR", None)
    return env
