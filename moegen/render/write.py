"""Keep generated/ exactly in step with the render: write what changed, remove orphans, check.

All texts are rendered before this module runs. `apply` then stages every changed file as a
temporary file beside its target, and only when all are staged renames them into place, removes
the orphans (files the previous MANIFEST lists that the render no longer produces) and writes
the MANIFEST last. A failure while staging leaves the previous tree untouched; a crash after
it leaves the previous MANIFEST, which still lists every orphan, so the next render finishes
the job (and `--check` reports the tree stale until then). No temporary file survives a
failure. An exclusive lock on the output directory keeps two renders from interleaving.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping

from moegen.render.engine import manifest_text

MANIFEST = "MANIFEST"


@dataclass
class Report:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed"
        )


def _safe_relpath(p: str) -> bool:
    pp = PurePosixPath(p)
    return bool(p) and not pp.is_absolute() and ".." not in pp.parts and "\\" not in p


def read_manifest(out: Path) -> list[str]:
    """Paths the previous render wrote (unsafe entries are ignored: never delete outside out/)."""
    try:
        lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [
        ln.strip()
        for ln in lines
        if ln.strip() and not ln.startswith("#") and _safe_relpath(ln.strip())
    ]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """An exclusive flock on the output directory itself (no lock file to clean up)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"moegen: another render holds {out}; waiting for it", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def plan(
    out: Path, files: Mapping[str, str], full: bool
) -> tuple[dict[str, str], list[str], list[str]]:
    """(changed {path: text}, unchanged paths, orphan paths) for rendering `files` into `out`."""
    for p in files:
        if not _safe_relpath(p):
            raise ValueError(f"refusing to write outside the output directory: {p!r}")
    changed, unchanged = {}, []
    for p, text in files.items():
        if _read(out / p) == text:
            unchanged.append(p)
        else:
            changed[p] = text
    orphans = sorted(set(read_manifest(out)) - set(files)) if full else []
    return changed, unchanged, [p for p in orphans if (out / p).exists()]


def apply(out: Path, files: Mapping[str, str], full: bool = True) -> Report:
    """Bring `out` in step with `files`; `full` = this is the whole spec (orphans removed)."""
    with locked(out):
        if not full:  # a partial render (-k) adds to the manifest, never drops from it
            old = set(read_manifest(out))
            files = dict(files)
            files[MANIFEST] = manifest_text(old | set(files))
        changed, unchanged, orphans = plan(out, files, full)
        staged: list[tuple[Path, Path]] = []
        try:
            for p in sorted(changed, key=lambda p: p == MANIFEST):  # MANIFEST last
                target = out / p
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.moegen-tmp")
                tmp.write_text(changed[p], encoding="utf-8")
                staged.append((tmp, target))
            _commit(out, staged, orphans)
        finally:  # after a failure, no temporary stays behind (a renamed one is already gone)
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
    return Report(written=sorted(changed), unchanged=sorted(unchanged), removed=orphans)


def _commit(out: Path, staged: list[tuple[Path, Path]], orphans: list[str]) -> None:
    """Rename the staged files into place, remove the orphans, and only then the new MANIFEST.

    The order is what makes a crash recoverable: until the last step the previous MANIFEST,
    which still lists every orphan, is the one on disk, so the next render removes them.
    """
    for tmp, target in staged:
        if target.name != MANIFEST:
            os.replace(tmp, target)
    for p in orphans:
        (out / p).unlink(missing_ok=True)
        _prune_empty_dirs((out / p).parent, out)
    for tmp, target in staged:
        if target.name == MANIFEST:
            os.replace(tmp, target)


def _prune_empty_dirs(d: Path, stop: Path) -> None:
    while d != stop and d.is_dir() and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


def check(out: Path, files: Mapping[str, str], full: bool = True) -> list[str]:
    """Unified diffs (current -> expected) of every file that is stale or orphaned; [] if fresh."""
    changed, _, orphans = plan(out, files, full)
    diffs = []
    for p in sorted(changed):
        old = _read(out / p)
        a = [] if old is None else old.splitlines(keepends=True)
        b = changed[p].splitlines(keepends=True)
        fromfile = f"a/{out.name}/{p}" if old is not None else "/dev/null"
        diffs.append("".join(difflib.unified_diff(a, b, fromfile, f"b/{out.name}/{p}")))
    for p in orphans:
        old = _read(out / p) or ""
        diffs.append(
            "".join(
                difflib.unified_diff(
                    old.splitlines(keepends=True), [], f"a/{out.name}/{p}", "/dev/null"
                )
            )
        )
    return diffs
