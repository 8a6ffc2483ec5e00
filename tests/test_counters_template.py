"""A template change moves an ISA counter: one variant compiled (gfx942, production shape)
from a copy of the templates, before and after an edit that adds a weight load and an MFMA to
every K step; the counters (and the floors verify holds the variant to) follow."""

from __future__ import annotations

import re

from moegen.cli.main import main as moegen_main
from moegen.spec.expand import enumerate_variants
from moegen.verify import plan, run

VARIANT = "moe_s1_bf16_per_expert_k1"
# The stage-1 K step's last MFMA; the edit appends one more weight load (the next weight row,
# so no other load of the lane reads the same address) and an MFMA that consumes it.
ANCHOR = "                up = mfma_tiles(mfma, a, b_up, up, N_SUBTILES)\n"
EXTRA = (
    "                b_more = [load_operand(w_rsrc, off + (k + model_dim) * WEIGHT_BYTES, mfma, "
    "WEIGHT_BITS) for off in up_offsets]\n"
    "                up = mfma_tiles(mfma, a, b_more, up, N_SUBTILES)\n"
)


def measure(project) -> plan.Outcome:
    assert moegen_main(["render", "-k", VARIANT]) == 0
    spec = project / "variants.yaml"
    (check,) = plan.plan_checks(
        spec, enumerate_variants(spec, [VARIANT]), ["gfx942"], project / "work", ["production"]
    )
    return run.run_check(check, cache=None)


def test_an_extra_weight_load_per_k_step_moves_the_counters(project_copy):
    spec = project_copy / "variants.yaml"
    text = spec.read_text()
    # a floor the current kernel misses (0.67 MFMA per load) and the edited one meets (0.75)
    text = re.sub(r"^  floors: .*\n", "", text, count=1, flags=re.M)  # the shipped defaults'
    spec.write_text(text.replace("defaults:\n", "defaults:\n  floors: {mfma_per_load: 0.7}\n", 1))
    before = measure(project_copy)
    assert any("mfma_per_load = 0.67 misses its floor" in p for p in before.problems)

    template = project_copy / "templates" / "flydsl" / "moe_stage1.py.j2"
    source = template.read_text()
    assert source.count(ANCHOR) == 1, "the stage-1 K step changed: update ANCHOR/EXTRA"
    template.write_text(source.replace(ANCHOR, ANCHOR + EXTRA))
    after = measure(project_copy)
    assert after.ok, after.problems

    (old,), (new,) = before.counters, after.counters
    # LLVM unrolls the edited loop differently (per-pass counts are not comparable), so the
    # assertions are on ratios the edit fixes: a K step goes from 3 loads (x, gate, up) and
    # 2 MFMAs to 4 loads (3 of the weight) and 3 MFMAs
    assert old.loop.mfma_per_load == 2 / 3 and new.loop.mfma_per_load == 3 / 4
    assert old.loop.weight_loads / old.loop.loads == 2 / 3
    assert new.loop.weight_loads / new.loop.loads == 3 / 4
    # more independent loads per step: more bytes in flight at the waits
    assert new.loop.kib_in_flight_mean > old.loop.kib_in_flight_mean
