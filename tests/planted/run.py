"""Planted-bug check: does the test suite catch each bug in the catalog?

Each entry of `tests/planted/catalog.py` is one named bug: an exact text edit of one tracked file
and the part of the suite that must catch it. For each entry this script copies the working tree
into a temporary directory, plants the bug there (the edit must match exactly once, so a stale
entry fails loudly instead of planting nothing), re-renders `generated/` when a template was
edited (the suite must catch the bug in the kernels, not merely see stale output), runs the
entry's tests against the copy, and reports whether they failed. The working tree is never
modified.

    python -m tests.planted.run              # every entry, two at a time
    python -m tests.planted.run -k stage2    # entries whose name contains "stage2"
    python -m tests.planted.run --list

Exit status: 0 when every planted bug was caught, 1 when any was missed or could not be planted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.planted.catalog import BUGS, Bug

ROOT = Path(__file__).resolve().parents[2]
# pytest's exit status when tests ran and at least one failed; other non-zero statuses
# (collection/usage errors, interrupts) are not a catch: the check itself broke.
PYTEST_TESTS_FAILED = 1


@dataclass(frozen=True)
class Outcome:
    bug: Bug
    status: str  # "caught" | "MISSED" | "BROKEN"
    seconds: float
    detail: str


def tracked_files(root: Path) -> list[str]:
    """Files git tracks plus untracked ones it does not ignore (the tree CI would see)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(p for p in out.split("\0") if p and (root / p).is_file())


def copy_tree(root: Path, dst: Path) -> None:
    for rel in tracked_files(root):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def plant(bug: Bug, tree: Path) -> None:
    """Apply the bug's edit to `tree`; ValueError unless `old` occurs exactly once."""
    path = tree / bug.path
    text = path.read_text()
    count = text.count(bug.old)
    if count != 1:
        raise ValueError(
            f"{bug.name}: the text to replace occurs {count} times in {bug.path} (need 1)"
        )
    path.write_text(text.replace(bug.old, bug.new))


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _last_lines(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def _failed_ids(output: str) -> list[str]:
    return [line.split(" ", 2)[1] for line in output.splitlines() if line.startswith("FAILED ")]


def check(bug: Bug) -> Outcome:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(ROOT, tree)
        try:
            plant(bug, tree)
        except ValueError as err:
            return Outcome(bug, "BROKEN", time.monotonic() - start, str(err))
        env = _env(tree)
        if bug.path.startswith("templates/"):
            render = subprocess.run(
                [sys.executable, "-m", "moegen", "render"],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
            )
            if render.returncode != 0:
                return Outcome(
                    bug,
                    "caught",
                    time.monotonic() - start,
                    "moegen render failed: " + _last_lines(render.stdout + render.stderr, 3),
                )
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-x",
            "-rf",
            *bug.tests,
        ]
        result = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - start
        output = result.stdout + result.stderr
        if result.returncode == PYTEST_TESTS_FAILED:
            failed = _failed_ids(output)
            return Outcome(bug, "caught", seconds, failed[0] if failed else _last_lines(output, 2))
        if result.returncode == 0:
            return Outcome(bug, "MISSED", seconds, _last_lines(output, 1))
        return Outcome(
            bug, "BROKEN", seconds, f"pytest exit {result.returncode}: " + _last_lines(output, 4)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only entries whose name contains this")
    parser.add_argument("--jobs", type=int, default=2, help="entries checked at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    args = parser.parse_args(argv)
    bugs = [b for b in BUGS if args.k in b.name]
    if not bugs:
        parser.error(f"no entry matches -k {args.k!r}")
    if args.list:
        for bug in bugs:
            print(f"{bug.name:<40} {bug.path}: {bug.why}")
        return 0
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = []
        for outcome in pool.map(check, bugs):
            outcomes.append(outcome)
            print(
                f"{outcome.status:<7} {outcome.bug.name:<40} {outcome.seconds:6.1f}s  {outcome.detail}",
                flush=True,
            )
    caught = sum(o.status == "caught" for o in outcomes)
    print(f"\n{caught} of {len(outcomes)} planted bugs caught in {time.monotonic() - start:.0f} s")
    return 0 if caught == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
