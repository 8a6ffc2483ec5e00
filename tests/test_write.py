"""generated/ bookkeeping: write-if-changed, orphan removal, interrupted renders, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moegen.cli.main import main
from moegen.render import write
from tests.conftest import checkout_env


def snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_unchanged_files_keep_their_mtime(mini):
    assert main(["render"]) == 0
    gen = mini / "generated"
    before = snapshot(gen)
    time.sleep(0.02)
    text = (mini / "variants.yaml").read_text().replace("tile: {m: 32}", "tile: {m: 48}")
    (mini / "variants.yaml").write_text(text)
    assert main(["render"]) == 0
    after = snapshot(gen)
    old, new = (
        "flydsl/moe_s1_bf16_per_expert_splitk2_t32x64x64.py",
        "flydsl/moe_s1_bf16_per_expert_splitk2_t48x64x64.py",
    )
    assert old not in after and new in after
    for path, (data, mtime) in before.items():
        if path not in (old, "MANIFEST"):
            assert after[path] == (data, mtime), f"{path} was rewritten though unchanged"
    assert after["MANIFEST"][0] != before["MANIFEST"][0]


def test_render_twice_writes_nothing(mini, capsys):
    assert main(["render"]) == 0
    capsys.readouterr()
    assert main(["render"]) == 0
    assert "0 written, 9 unchanged, 0 removed" in capsys.readouterr().out


def test_orphans_listed_in_manifest_are_removed_but_user_files_kept(mini):
    assert main(["render"]) == 0
    gen = mini / "generated"
    user_file = gen / "flydsl" / "notes_by_a_human.txt"
    user_file.write_text("keep me")
    text = (mini / "variants.yaml").read_text()
    text = text.replace(
        "    addressing: [whole_tensor, per_expert]\n", "    addressing: [per_expert]\n"
    )
    (mini / "variants.yaml").write_text(text)
    assert main(["render"]) == 0
    names = {p.name for p in (gen / "flydsl").iterdir()}
    assert not any("whole_tensor" in n for n in names)
    assert "moe_s1_bf16_per_expert.py" in names
    assert user_file.read_text() == "keep me"
    assert "whole_tensor" not in (gen / "MANIFEST").read_text()


def test_manifest_entries_outside_the_tree_are_never_deleted(mini, tmp_path):
    assert main(["render"]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    manifest = mini / "generated" / "MANIFEST"
    manifest.write_text(manifest.read_text() + f"../../victim.txt\n{victim}\n")
    assert main(["render"]) == 0
    assert victim.read_text() == "precious"


def test_failure_while_rendering_leaves_generated_untouched(mini, capsys):
    assert main(["render"]) == 0
    before = snapshot(mini / "generated")
    tpl = mini / "templates" / "flydsl" / "moe_stage2.py.j2"
    tpl.write_text(tpl.read_text() + "X = {{ v.no_such_field }}\n")  # StrictUndefined -> error
    (mini / "variants.yaml").write_text(
        (mini / "variants.yaml").read_text().replace("{m: 32}", "{m: 64}")
    )
    assert main(["render"]) == 1
    assert "no_such_field" in capsys.readouterr().err
    assert snapshot(mini / "generated") == before


def test_failure_while_writing_leaves_generated_untouched(mini, monkeypatch):
    assert main(["render"]) == 0
    before = snapshot(mini / "generated")
    (mini / "variants.yaml").write_text(
        (mini / "variants.yaml").read_text().replace("{m: 32}", "{m: 64}")
    )
    real_write_text = Path.write_text
    calls = []

    def flaky(self, *a, **kw):
        if self.name.endswith(".moegen-tmp"):
            calls.append(self)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write_text(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", flaky)
    with pytest.raises(OSError, match="No space"):
        main(["render"])
    monkeypatch.undo()
    assert snapshot(mini / "generated") == before
    assert not list((mini / "generated").rglob("*.moegen-tmp"))


def test_check_reports_drift_and_writes_nothing(mini, capsys):
    assert main(["render"]) == 0
    capsys.readouterr()
    before = snapshot(mini / "generated")
    (mini / "variants.yaml").write_text(
        (mini / "variants.yaml")
        .read_text()
        .replace("mfma_f32_16x16x32_bf16", "mfma_f32_16x16x32_bf16_new")
    )
    assert main(["render", "--check"]) == 1
    out = capsys.readouterr()
    assert "run `moegen render`" in out.err
    assert '+    "gfx950": "mfma_f32_16x16x32_bf16_new",' in out.out
    assert snapshot(mini / "generated") == before


def test_partial_render_keeps_other_files_and_manifest(mini, capsys):
    assert main(["render", "-k", "moe_s2_*"]) == 0
    files = sorted(p.name for p in (mini / "generated" / "flydsl").iterdir())
    assert files == ["moe_s2_bf16_per_expert.py", "moe_s2_bf16_whole_tensor.py"]
    assert main(["render"]) == 0
    assert main(["render", "-k", "moe_s1_*"]) == 0
    assert len(write.read_manifest(mini / "generated")) == 8


def test_two_renders_do_not_interleave(mini):
    """A second render waits on the lock the first holds."""
    gen = mini / "generated"
    gen.mkdir()
    # The lock is held until the second render says it is waiting, so the outcome does not
    # depend on how fast a loaded machine starts the subprocess.
    with write.locked(gen):
        proc = subprocess.Popen(
            [sys.executable, "-m", "moegen", "render"],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=mini,
            env=checkout_env(),
        )
        first = proc.stderr.readline()  # blocks until the render reports the lock
        assert "waiting" in first, first
        time.sleep(0.5)
        assert proc.poll() is None, "the second render finished while the lock was held"
        assert not list(gen.glob("**/*.py")), "the second render wrote while the lock was held"
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert list(gen.glob("**/*.py")), "the second render wrote nothing once the lock was free"


NEW_MODULE = "moe_s1_bf16_per_expert_splitk2_t48x64x64.py"


def _drop_and_rename(mini: Path) -> None:
    """Edit the mini spec: its three whole_tensor variants and the t32 one become orphans, and
    the t32 variant comes back as NEW_MODULE (so the render both writes and removes files)."""
    spec = mini / "variants.yaml"
    text = spec.read_text()
    for old, new in (
        ("    addressing: [whole_tensor, per_expert]\n", "    addressing: [per_expert]\n"),
        ("tile: {m: 32}", "tile: {m: 48}"),
    ):
        assert old in text
        text = text.replace(old, new)
    spec.write_text(text)


def _crash_on(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Make one step of write.apply raise, as a killed process or a full disk would stop it."""
    real_replace = os.replace

    def crash(*_a, **_kw):
        raise OSError(5, f"simulated crash at {step}")

    if step == "orphan_removal":  # after the first orphan is unlinked, before the others
        monkeypatch.setattr(write, "_prune_empty_dirs", crash)
        return
    name = {"module_replace": NEW_MODULE, "manifest_replace": write.MANIFEST}[step]

    def replace(src, dst, *a, **kw):
        if Path(dst).name == name:
            crash()
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("step", ["module_replace", "orphan_removal", "manifest_replace"])
def test_crash_after_staging_is_recovered_by_the_next_render(step, mini, tmp_path):
    """A render killed after staging (while files replace, orphans go, or MANIFEST is written)
    leaves a state that --check reports as stale and the next render turns into a clean tree:
    the MANIFEST that lists the orphans is only replaced after they are gone."""
    gen = mini / "generated"
    assert main(["render"]) == 0
    orphans = sorted(p.name for p in (gen / "flydsl").glob("*_t32x64x64.py"))
    orphans += sorted(p.name for p in (gen / "flydsl").glob("*whole_tensor*"))
    assert len(orphans) == 4
    _drop_and_rename(mini)
    with pytest.MonkeyPatch.context() as mp:
        _crash_on(mp, step)
        with pytest.raises(OSError, match="simulated crash"):
            main(["render"])
    if step != "manifest_replace":  # the crash hit before every orphan was removed
        assert any((gen / "flydsl" / n).exists() for n in orphans)
    assert not list(gen.rglob("*.moegen-tmp")), "a crashed render left temporaries behind"
    assert main(["render", "--check"]) == 1, "--check called a half-written tree fresh"
    assert main(["render"]) == 0
    assert not any((gen / "flydsl" / n).exists() for n in orphans)
    assert (gen / "flydsl" / NEW_MODULE).exists()
    assert main(["render", "--out", str(tmp_path / "clean")]) == 0
    assert {p: d for p, (d, _) in snapshot(gen).items()} == {
        p: d for p, (d, _) in snapshot(tmp_path / "clean").items()
    }
    assert main(["render", "--check"]) == 0
