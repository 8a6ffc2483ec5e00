"""A template change moves an ISA counter: one variant compiled (gfx942, production shape)
from a copy of the templates, before and after an edit that waits for the prefetched K tile
inside the loop; the counters (and the floors verify holds the variant to) follow."""

from __future__ import annotations


from moegen.cli.main import main as moegen_main
from moegen.spec.expand import enumerate_variants
from moegen.verify import plan, run

VARIANT = "moe_s1_bf16_per_expert"
# The K loop (templates/flydsl/_common.j2, k_loop) issues tile kt + 1's weight loads before
# tile kt's MFMAs. The edit waits for them right there (s_waitcnt 0: every counter drained), the
# load-wait-compute loop the prefetch replaced.
ANCHOR = "            b_next = load_b_tile({{ b_args }}, kt + 1)\n"
DRAIN = "            rocdl.s_waitcnt(0)\n"


def measure(project) -> plan.Outcome:
    assert moegen_main(["render", "-k", VARIANT]) == 0
    spec = project / "variants.yaml"
    (check,) = plan.plan_checks(
        spec, enumerate_variants(spec, [VARIANT]), ["gfx942"], project / "work", ["production"]
    )
    return run.run_check(check, cache=None)


def test_a_wait_for_the_prefetched_tile_moves_the_counters(project_copy):
    before = measure(project_copy)
    assert before.ok, before.problems  # the shipped floors: no drain in the loop, 6 KiB in flight

    template = project_copy / "templates" / "flydsl" / "_common.j2"
    source = template.read_text()
    assert source.count(ANCHOR) == 1, "the K loop changed: update ANCHOR"
    template.write_text(source.replace(ANCHOR, ANCHOR + DRAIN))
    after = measure(project_copy)

    (old,), (new,) = before.counters, after.counters
    assert old.loop.drains == 0 and new.loop.drains > 0
    # and verify holds the edited kernel to the shipped floor
    assert not after.ok
    assert any(f"drains_in_loop = {new.loop.drains} misses its floor" in p for p in after.problems)
