"""The planted-bug catalog stays plantable: every entry's edit applies to the current tree once.

The catalog is run by `python -m tests.planted.run` (minutes; see README); this cheap check keeps
it from going stale between those runs: an entry whose text no longer exists would plant nothing
and report a bug as caught by tests that never saw it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.planted import run
from tests.planted.catalog import BUGS

ROOT = Path(__file__).resolve().parents[1]


def test_names_are_unique():
    names = [bug.name for bug in BUGS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("bug", BUGS, ids=[bug.name for bug in BUGS])
def test_entry_plants_exactly_once(bug, tmp_path):
    tree = tmp_path / "tree"
    (tree / bug.path).parent.mkdir(parents=True)
    original = (ROOT / bug.path).read_text()
    (tree / bug.path).write_text(original)
    run.plant(bug, tree)
    planted = (tree / bug.path).read_text()
    assert planted != original
    assert planted == original.replace(bug.old, bug.new, 1)


@pytest.mark.parametrize("bug", BUGS, ids=[bug.name for bug in BUGS])
def test_entry_names_existing_tests(bug):
    paths = [arg.split("::")[0] for arg in bug.tests if not arg.startswith("-") and "/" in arg]
    assert paths, f"{bug.name} names no test file"
    for path in paths:
        assert (ROOT / path).is_file(), f"{bug.name}: {path} does not exist"


def test_plant_refuses_a_stale_entry(tmp_path):
    bug = BUGS[0]
    (tmp_path / bug.path).parent.mkdir(parents=True)
    (tmp_path / bug.path).write_text("nothing to replace here\n")
    with pytest.raises(ValueError, match="occurs 0 times"):
        run.plant(bug, tmp_path)
