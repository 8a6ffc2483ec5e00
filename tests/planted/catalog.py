"""The planted-bug catalog: bugs the test suite must catch, one exact edit each.

Each entry names a bug a real change could introduce, the file it lives in, the exact text it
replaces (which must occur exactly once, so an entry goes stale loudly, never silently), and the
tests that must fail with it planted. `python -m tests.planted.run` plants each one in a copy of
the tree and runs those tests; `tests/test_planted_catalog.py` checks in CI that every entry still
applies to the current tree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    name: str
    path: str  # relative to the repository root
    old: str  # exact text, present once
    new: str
    tests: tuple[str, ...]  # pytest arguments (files or node ids) that must fail
    why: str  # the real-world bug this stands for


_S1 = "generated/tests/test_moe_s1_bf16_per_expert.py"
_S1_K2 = "generated/tests/test_moe_s1_bf16_per_expert_splitk2.py"
_S1_WHOLE = "generated/tests/test_moe_s1_bf16_whole_tensor.py"
_S2 = "generated/tests/test_moe_s2_bf16_per_expert.py"
_S2_WHOLE = "generated/tests/test_moe_s2_bf16_whole_tensor.py"
_EDGES = "tests/test_pipeline_edges.py"

_S2_F16 = "generated/tests/test_moe_s2_fp16_per_expert_out_float16.py"
_S1_FP8 = "generated/tests/test_moe_s1_fp8_per_expert.py"
_S2_FP8 = "generated/tests/test_moe_s2_fp8_per_expert.py"
_S1_INT4 = "generated/tests/test_moe_s1_int4_bf16_per_expert.py"
_S1_W4A8 = "generated/tests/test_moe_s1_int4_per_expert_t32x64x256.py"
# the per_expert scale rebase (templates/flydsl/_addressing.j2), per-channel and per-group
_SCALE_REBASE = (
    "    ws_rsrc = buffer_rsrc(fx.add_offset(fx.get_iter(WScale), fx.Int64(expert) * "
    'fx.Int64({{ rows }}{{ (" * " ~ per_row) if per_row }})))\n'
    "    ws_row0 = 0\n"
)
_S1_INT8 = "generated/tests/test_moe_s1_int8_per_expert.py"
_S1_INT8S = "generated/tests/test_moe_s1_int8smooth_per_expert.py"
_S2_REDUCE = "generated/tests/test_moe_s2_bf16_per_expert_out_bfloat16_reduce.py"

BUGS: tuple[Bug, ...] = (
    # ---- kernels (templates and the device helpers traced into them) ----------------------
    Bug(
        "packed_atomic_pair_swapped",
        "moegen/backends/flydsl/epilogue.py",
        "[lo, hi])",
        "[hi, lo])",
        (_S2_F16, "-k", "boundary"),
        "a packed-atomic epilogue that adds two adjacent columns in the wrong halves",
    ),
    Bug(
        "packed_epilogue_reads_wrong_row",
        "templates/flydsl/moe_stage2.py.j2",
        "row = lane // 8 + half * 8\n",
        "row = lane // 8 + half * 4\n",
        (_S2_F16, "-k", "boundary"),
        "an LDS-staged epilogue whose read-back covers half the rows twice",
    ),
    Bug(
        "reduce_mode_forgets_the_slot",
        "templates/flydsl/moe_stage2.py.j2",
        "((token * topk + slot) * model_dim",
        "((token * topk) * model_dim",
        (_S2_REDUCE, "-k", "boundary"),
        "reduce mode storing every slot of a token into the same row (the topk sum sees one)",
    ),
    Bug(
        "stage2_output_doubled",
        "templates/flydsl/moe_stage2.py.j2",
        "[r] * row_weights[r]\n",
        "[r] * row_weights[r] * 2.0\n",
        (_S2, "-k", "boundary"),
        "a stage-2 epilogue that scales its output by a constant",
    ),
    Bug(
        "stage2_routing_weight_dropped",
        "templates/flydsl/moe_stage2.py.j2",
        "[r] * row_weights[r]\n",
        "[r]\n",
        (_S2, "-k", "boundary"),
        "a stage-2 epilogue that forgets the routing weight",
    ),
    Bug(
        "silu_wrong_slope",
        "moegen/backends/flydsl/device.py",
        "LOG2_E = 1.4426950408889634",
        "LOG2_E = 1.0",
        (_S1, "-k", "boundary"),
        "a wrong activation (x*sigmoid(x*ln2) for SiLU), in a helper traced into every kernel: "
        "also proves the compile cache does not serve kernels traced from the old helper",
    ),
    Bug(
        "stage1_gate_up_swapped",
        "templates/flydsl/moe_stage1.py.j2",
        "h = silu(g) * u",
        "h = silu(u) * g",
        (_S1, "-k", "boundary"),
        "gate and up halves of W1 exchanged",
    ),
    # ---- scaled dtypes (fp8): the epilogue's scales and the scale tensor's addressing -------
    Bug(
        "fp8_weight_scale_dropped",
        "templates/flydsl/moe_stage1.py.j2",
        'g = g{{ " * xs" if act_scale }}{{ " * wsg[ni]" if w_scale }}',
        'g = g{{ " * xs" if act_scale }}',
        (f"{_S1_FP8}::test_boundary[inter=384-decode-emulator]",),
        "a dequantizing epilogue that forgets the gate rows' per-channel weight scale",
    ),
    Bug(
        "fp8_act_scale_of_the_token_not_the_row",
        "templates/flydsl/moe_stage2.py.j2",
        "load_scale(as_rsrc, token * topk + slot)",
        "load_scale(as_rsrc, token)",
        (f"{_S2_FP8}::test_boundary[inter=384-decode-emulator]",),
        "stage 2 reading a2's per-row scale at the token instead of its (token, slot) row",
    ),
    Bug(
        "fp8_weight_scale_whole_tensor_in_per_expert",
        "templates/flydsl/_addressing.j2",
        _SCALE_REBASE,
        "    ws_rsrc = buffer_rsrc(fx.get_iter(WScale))\n    ws_row0 = expert * {{ rows }}\n",
        (_S1_FP8, "-k", "compile_and_audit"),
        "a per_expert variant that rebases its weight but folds the expert into the scale "
        "tensor's 32-bit offset: numerically right today, audited as whole_tensor",
    ),
    Bug(
        "int4_group_scale_whole_tensor_in_per_expert",
        "templates/flydsl/_addressing.j2",
        _SCALE_REBASE,
        "    ws_rsrc = buffer_rsrc(fx.get_iter(WScale))\n    ws_row0 = expert * {{ rows }}\n",
        (_S1_INT4, "-k", "compile_and_audit"),
        "the same for int4's per-group scales [E, N, K / 32]: the expert folded into their "
        "32-bit offset in a per_expert variant, audited as whole_tensor",
    ),
    Bug(
        "int4_nibbles_high_first",
        "moegen/backends/flydsl/device.py",
        "_INT4_SHIFTS = [28 - 4 * i for i in range(8)]",
        "_INT4_SHIFTS = [4 * i for i in range(8)]",
        ("tests/emulator/test_semantics.py::test_int4_dequant", _S1_INT4 + "::test_boundary"),
        "int4 unpacked high nibble first (FlyDSL's legacy split_nibbles order or a swapped "
        "pack_uint4): every K value of a dword meets another's activation",
    ),
    Bug(
        "int4_dequant_truncates",
        "moegen/backends/flydsl/device.py",
        "    rounded = arith.truncf(ir.VectorType.get([8], ir.Type.parse(element)), scaled)",
        "    rounded = vector.bitcast(\n"
        "        ir.VectorType.get([8], ir.Type.parse(element)),\n"
        "        arith.trunci(ir.VectorType.get([8], ir.IntegerType.get_signless(16)), arith.shrui(\n"
        "            vector.bitcast(v8i, scaled), arith.constant(v8i, ir.DenseElementsAttr.get_splat(\n"
        "                v8i, ir.IntegerAttr.get(i32, 16))))),\n"
        "    )",
        ("tests/emulator/test_semantics.py::test_int4_dequant",),
        "bf16 by dropping the low 16 bits of the f32 product (round toward zero) instead of "
        "rounding to nearest even: a bias of up to one bf16 ulp per weight",
    ),
    Bug(
        "w4a8_unpack_without_sign_extension",
        "moegen/backends/flydsl/device.py",
        "        return arith.ori(low, arith.muli(arith.andi(nibbles, splat(_NIBBLE_SIGNS)), splat(_SIGN_FILL)))",
        "        return low",
        (
            "tests/emulator/test_semantics.py::test_int4_unpack_i8",
            f"{_S1_W4A8}::test_boundary[inter=384-decode-emulator]",
        ),
        "W4A8's int4 nibbles zero-extended into int8 (the sign fill dropped): -8..-1 read as "
        "8..15, a bias on every negative weight",
    ),
    Bug(
        "w4a8_unpack_halves_swapped",
        "moegen/backends/flydsl/device.py",
        "    order = [p for i in range(dwords) for p in (i, dwords + i)]",
        "    order = [p for i in range(dwords) for p in (dwords + i, i)]",
        (
            "tests/emulator/test_semantics.py::test_int4_unpack_i8",
            f"{_S1_W4A8}::test_boundary[inter=384-decode-emulator]",
        ),
        "the high nibbles (v4..v7) of a split_nibbles dword taken as its first 4 values: the "
        "swapped de-interleave upstream's perturb test guards against",
    ),
    # ---- integer accumulators (int8) and expanded activations (int8smooth) -----------------
    Bug(
        "int8_i32_accumulator_read_as_f32_bits",
        "moegen/backends/flydsl/device.py",
        "return [fx.Vector(acc, (4,), fx.Int32)[i].to(fx.Float32) for i in range(4)]",
        "return [fx.Vector(acc, (4,), fx.Float32)[i] for i in range(4)]",
        (f"{_S1_INT8}::test_boundary[inter=384-decode-emulator]",),
        "an epilogue that reinterprets the i32 accumulator's bits as f32 instead of converting",
    ),
    Bug(
        "int8smooth_token_major_rows",
        "templates/flydsl/moe_stage1.py.j2",
        "return ((slot < topk).select(slot, 0) * tokens + token) * model_dim",
        "return (token * topk + (slot < topk).select(slot, 0)) * model_dim",
        (f"{_S1_INT8S}::test_boundary[inter=384-decode-emulator]",),
        "stage 1 gathering int8smooth's expanded rows token-major (stage 2's a2 order) instead "
        "of upstream's slot-major order",
    ),
    Bug(
        "int8smooth_x_offset_loses_bit_31",
        "templates/flydsl/moe_stage1.py.j2",
        "return ((slot < topk).select(slot, 0) * tokens + token) * model_dim",
        "return (((slot < topk).select(slot, 0) * tokens + token) * model_dim) & 0x7FFFFFFF",
        ("tests/test_int8smooth_band.py",),
        "expanded-row offsets that break at 2**31 (signed 32-bit math), below the 4 GiB guard",
    ),
    Bug(
        "int8smooth_scale_of_the_token_not_the_row",
        "templates/flydsl/moe_stage1.py.j2",
        "load_scale(xs_rsrc, slot * tokens + token)",
        "load_scale(xs_rsrc, token)",
        (f"{_S1_INT8S}::test_boundary[inter=384-decode-emulator]",),
        "stage 1 reading int8smooth's per-row x_scale at the token instead of its (token, slot) "
        "row",
    ),
    # ---- the pipelined K loop and the preshuffled layout -----------------------------------
    Bug(
        "k_loop_even_count_drops_a_tile",
        "templates/flydsl/_common.j2",
        "for kt in range(fx.Int32({{ k_tiles }} - 1){{",
        "for kt in range(fx.Int32(({{ k_tiles }} - 1) // 2 * 2){{",
        (_EDGES, "-k", "16x64x128-s1-k2-gfx942 or 16x64x128-s1-k4-gfx942"),
        "a K loop unrolled by two whose remainder is mishandled: exact at odd K-tile counts, "
        "wrong at even ones (the mirror of upstream's stage 1 dropping the middle tile at odd "
        "model_dim / tile_k)",
    ),
    Bug(
        "k_loop_missing_barrier",
        "templates/flydsl/_common.j2",
        "            store_a_tile(lds, a_dst, (kt + 1) % 2, a_next)\n            workgroup_barrier()\n",
        "            store_a_tile(lds, a_dst, (kt + 1) % 2, a_next)\n",
        (_EDGES, "-k", "16x64x128-s1-k3-gfx942"),
        "the double buffer's barrier dropped: waves read an LDS tile other waves are still "
        "writing (the emulator's race check reports it)",
    ),
    Bug(
        "lds_swizzle_read_unswizzled",
        "templates/flydsl/_common.j2",
        "out.append([r * A_ROW_BYTES + ((u ^ (r % SWIZZLE)) * 16) for u in unit])",
        "out.append([r * A_ROW_BYTES + u * 16 for u in unit])",
        (_EDGES, "-k", "16x64x128-s2-k1-gfx950"),
        "the activation tile written swizzled to LDS but read back without the swizzle",
    ),
    Bug(
        "preshuffle_k_groups_transposed",
        "moegen/runtime/preshuffle.py",
        "    return grouped.permute(0, 1, 3, 4, 2, 5).contiguous().view(w.shape)",
        "    return grouped.permute(0, 1, 3, 2, 4, 5).contiguous().view(w.shape)",
        ("tests/test_preshuffle.py", _S1, "-k", "loop or boundary and safe"),
        "a host preshuffle whose 16-row and 16-byte group order differs from the kernel's",
    ),
    # ---- host quantization (moegen.runtime.quant) -----------------------------------------
    Bug(
        "quant_int_rounding_truncates",
        "moegen/runtime/quant/scales.py",
        "q = (y.round() if f.integer else y)",
        "q = (y.trunc() if f.integer else y)",
        ("tests/test_quant.py", "-k", "per_token or round_trip"),
        "int8/int4 values truncated toward zero (upstream's torch reference): up to a whole step "
        "of error where half is the bound",
    ),
    Bug(
        "quant_int4_plain_pack_nibbles_swapped",
        "moegen/runtime/quant/int4.py",
        "return pairs[..., 0] | (pairs[..., 1] << 4)",
        "return pairs[..., 1] | (pairs[..., 0] << 4)",
        ("tests/test_quant.py", "-k", "pack_matches"),
        "the odd K element packed into the low nibble, against upstream's even-low convention",
    ),
    Bug(
        "quant_int4_split_nibbles_halves_swapped",
        "moegen/runtime/quant/int4.py",
        "(runs[:, 0] | (runs[:, 1] << 4))",
        "(runs[:, 1] | (runs[:, 0] << 4))",
        ("tests/test_quant.py", "-k", "split_nibbles"),
        "v4..v7 packed in the low nibbles: the kernel's 7-op unpack reads K out of order",
    ),
    Bug(
        "quant_int8smooth_rows_token_major",
        "moegen/runtime/quant/scales.py",
        "    slot_major: bool = True,",
        "    slot_major: bool = False,",
        ("tests/test_quant.py", "-k", "smooth"),
        "expanded int8smooth rows written token-major where the stage-1 kernel gathers "
        "row = slot * tokens + token",
    ),
    Bug(
        "quant_bf16_group_scale_pair_swapped",
        "moegen/runtime/quant/int4.py",
        "view(e, n, g // 2, 2).transpose(1, 2)",
        "view(e, n, g // 2, 2).flip(-1).transpose(1, 2)",
        ("tests/test_quant.py", "-k", "group_scales"),
        "the odd group's bf16 scale in the dword's low half, where the kernel takes the even one",
    ),
    # ---- the spec: every level strict, every name a string -------------------------------
    Bug(
        "spec_unknown_key_accepted_below_top_level",
        "moegen/spec/checks.py",
        "        if key not in allowed:\n            errors.append(",
        "        if key not in allowed and what == 'the top level':\n            errors.append(",
        ("tests/test_spec.py", "-k", "golden"),
        "unknown keys nested in a dtype, shape, mfma entry or arch accepted silently",
    ),
    Bug(
        "spec_numeric_dtype_name_crashes",
        "moegen/spec/expand.py",
        "declared = sorted(map(str, names))",
        "declared = sorted(names)",
        ("tests/test_spec.py",),
        "a dtype named 16 (YAML reads an int) crashed `moegen validate` with a TypeError",
    ),
    # ---- the launcher: every check refuses before any launch ------------------------------
    Bug(
        "launch_token_limit_dropped",
        "moegen/runtime/launch.py",
        "if not 1 <= tokens < MAX_TOKENS:",
        "if not 1 <= tokens:",
        ("tests/test_launch.py",),
        "tokens past the 24-bit token field of sorted_token_ids alias other tokens",
    ),
    Bug(
        "launch_device_mismatch_accepted",
        "moegen/runtime/launch.py",
        "if len(set(devices.values())) > 1:",
        "if len(set(devices.values())) > 2:",
        ("tests/test_launch.py",),
        "operands on two devices reach the kernel",
    ),
    Bug(
        "launch_short_sorted_token_ids_accepted",
        "moegen/runtime/launch.py",
        "if sorted_token_ids.numel() < sorted_expert_ids.numel() * tile_m:",
        "if sorted_token_ids.numel() < sorted_expert_ids.numel():",
        ("tests/test_launch.py",),
        "the kernel reads routing entries past the end of sorted_token_ids",
    ),
    Bug(
        "launch_w2_inner_dim_unchecked",
        "moegen/runtime/launch.py",
        "    if w_inter * pack != inter:\n",
        "    if False:\n",
        ("tests/test_launch.py",),
        "w2 with the wrong inner dimension is read with a2's row stride",
    ),
    Bug(
        "launch_odd_gate_up_rows_accepted",
        "moegen/runtime/launch.py",
        "    if two_inter % 2:\n",
        "    if two_inter % 2 and two_inter < 0:\n",
        ("tests/test_launch.py",),
        "w1 with an odd number of gate/up rows splits gate and up at the wrong row",
    ),
    Bug(
        "launch_empty_num_valid_ids_accepted",
        "moegen/runtime/launch.py",
        "    if num_valid_ids.numel() < 1:\n",
        "    if num_valid_ids.numel() < 0:\n",
        ("tests/test_launch.py",),
        "the kernel's s_buffer_load of num_valid_ids[0] reads past an empty tensor",
    ),
    # ---- the emulator: AMD's buffer and numeric rules ----------------------------------------
    Bug(
        "emulator_soffset_wraps_with_voffset",
        "moegen/emulator/memory.py",
        "    return vo + so\n",
        "    return (vo + so) & np.uint64(0xFFFFFFFF)\n",
        ("tests/emulator/test_buffer_rules.py",),
        "soffset wrapped together with voffset (the old rule): reads memory the hardware never reads",
    ),
    Bug(
        "emulator_range_check_ignores_access_size",
        "moegen/emulator/memory.py",
        "return np.asarray(offset, np.uint64) + np.uint64(nbytes) <= np.asarray(num_records, np.uint64)",
        "return np.asarray(offset, np.uint64) < np.asarray(num_records, np.uint64)",
        ("tests/emulator/test_buffer_rules.py",),
        "a dword straddling num_records counted in range",
    ),
    Bug(
        "emulator_voffset_read_as_signed",
        "moegen/emulator/memory.py",
        "    vo = np.asarray(voffset, np.uint32).astype(np.uint64)\n",
        "    vo = np.asarray(voffset, np.uint32).view(np.int32).astype(np.int64).astype(np.uint64)\n",
        ("tests/emulator/test_buffer_rules.py",),
        "voffset read as signed: offsets in [2 GiB, 4 GiB) sign-extend far past the buffer",
    ),
    Bug(
        "emulator_fp8_saturates",
        "moegen/emulator/numerics.py",
        "        out = np.where(overflow, 0x7F, code) | np.where(np.signbit(x), 0x80, 0)\n",
        "        out = np.where(overflow, 0x7E, code) | np.where(np.signbit(x), 0x80, 0)\n",
        ("tests/emulator/test_hw_rules.py",),
        "out-of-range fp8 (e4m3fn) conversion saturating to 448 instead of NaN",
    ),
    Bug(
        "emulator_f32_atomic_keeps_denormals",
        "moegen/emulator/ops/memory_ops.py",
        "    r = flush_f32_denormals(a + flush_f32_denormals(np.asarray(v, np.float32).reshape(-1)))",
        "    r = old.view(np.float32).reshape(-1) + np.asarray(v, np.float32).reshape(-1)",
        ("tests/emulator/test_hw_rules.py",),
        "buffer f32 atomic add keeping denormals the hardware flushes",
    ),
    Bug(
        "emulator_accepts_any_rsrc_flags",
        "moegen/emulator/ops/memory_ops.py",
        "        if bad:\n            raise EmulatorError(",
        "        if bad and False:\n            raise EmulatorError(",
        ("tests/emulator/test_hw_rules.py",),
        "a V# flags word the emulator does not model accepted silently",
    ),
    Bug(
        "emulator_fence_scope_ignored",
        "moegen/emulator/ops/sync.py",
        "    return acquire, release, scope in CROSS_WAVE_SCOPES\n",
        "    return acquire, release, True\n",
        ("tests/emulator/test_sync.py", "-k", "gfx942 and fence"),
        "a wavefront-scope fence taken to order the waves of a workgroup",
    ),
    Bug(
        "emulator_lds_write_after_read_unchecked",
        "moegen/emulator/lds.py",
        "            bad &= rs > 0\n",
        "            bad &= rs < 0\n",
        ("tests/emulator/test_sync.py", "-k", "gfx942 and missing_barrier"),
        "an LDS race check blind to a store over bytes another wave has not finished reading",
    ),
    Bug(
        "emulator_udiv_read_as_signed",
        "moegen/emulator/ops/integer.py",
        "            a, b = np.asarray(a).astype(np.uint64), np.asarray(b).astype(np.uint64)\n",
        "            a, b = signed(a).astype(np.int64), signed(b).astype(np.int64)\n",
        ("tests/emulator/test_sync.py", "-k", "gfx942 and grid"),
        "unsigned division of a launcher's grid arithmetic evaluated as signed",
    ),
    # ---- references, verdicts and the address model ----------------------------------------
    Bug(
        "reference_gelu_for_silu",
        "moegen/runtime/reference.py",
        "    return torch.nn.functional.silu(gate.float()) * up.float()",
        "    return torch.nn.functional.gelu(gate.float()) * up.float()",
        (_S1, "-k", "boundary and emulator"),
        "a reference with the wrong activation (GELU): cosine-only checks on small data passed it",
    ),
    Bug(
        "split_k_reduce_gelu_for_silu",
        "moegen/runtime/launch.py",
        "    h = torch.nn.functional.silu(gate) * up",
        "    h = torch.nn.functional.gelu(gate) * up",
        (_S1_K2, "-k", "boundary and emulator"),
        "split-K's host reduction applying the wrong activation",
    ),
    Bug(
        "verdict_ignores_the_value_bound",
        "moegen/harness/verdict.py",
        "return self.cos_dist <= ROW_COS_DIST_LIMIT and self.max_abs_err <= self.bound",
        "return self.cos_dist <= ROW_COS_DIST_LIMIT",
        ("tests/test_verdict.py",),
        "a verdict that compares directions only: a doubled output passes",
    ),
    Bug(
        "verdict_global_only",
        "moegen/harness/verdict.py",
        "        if self.failed_rows or not self.global_cos_dist < GLOBAL_COS_DIST_LIMIT:",
        "        if not self.global_cos_dist < GLOBAL_COS_DIST_LIMIT:",
        ("tests/test_verdict.py",),
        "a global cos_dist verdict: a few wrapped rows among many good ones pass",
    ),
    Bug(
        "address_model_limit_inclusive",
        "moegen/core/address_model.py",
        "        return self.span_bytes < self.limit\n",
        "        return self.span_bytes <= self.limit\n",
        ("tests/test_address_model.py",),
        "a span of exactly 2**32 bytes accepted: its last byte's offset does not fit in 32 bits",
    ),
    Bug(
        "launch_address_guards_dropped",
        "moegen/runtime/launch.py",
        "    if _SKIP_ADDRESS_GUARDS.get():\n        return\n",
        "    return\n",
        ("tests/test_guards.py",),
        "the launcher no longer refuses tensors past 2**32 bytes: the seed bug, silently",
    ),
    Bug(
        "routing_sentinel_wrong_slot",
        "moegen/runtime/routing.py",
        "    sentinel = (topk << TOKEN_BITS) | tokens",
        "    sentinel = (0 << TOKEN_BITS) | tokens",
        ("tests/test_routing.py",),
        "padding rows that do not carry upstream's sentinel slot",
    ),
    Bug(
        "dispatch_ignores_preference",
        "moegen/runtime/dispatch.py",
        "    return sorted(found, key=lambda e: (not e.preferred, e.accumulate != \"atomic\", e.name))",
        "    return sorted(found, key=lambda e: e.name)",
        ("tests/test_dispatch.py",),
        "auto-dispatch no longer picks the YAML's preferred variant",
    ),
    # ---- the audit, verify and the compile cache ------------------------------------------------
    Bug(
        "per_expert_rebase_i32_product",
        "templates/flydsl/_addressing.j2",
        "fx.Int64(expert) * fx.Int64({{ rows }} * {{ cols }})",
        "fx.Int64(expert * ({{ rows }} * {{ cols }}))",
        (_S1, "-k", "audit"),
        "the i32 multiply widened afterwards (FlyDSL HEAD's fp8 rebase): overflows at production",
    ),
    Bug(
        "whole_tensor_declared_but_per_expert_emitted",
        "templates/flydsl/_addressing.j2",
        '{% macro weight_slab(v, rows, cols) %}\n{% if v.addressing == "whole_tensor" %}',
        '{% macro weight_slab(v, rows, cols) %}\n{% if v.addressing == "no_such_mode" %}',
        (_S1_WHOLE, "-k", "audit"),
        "the kernel's addressing differs from what variants.yaml declares",
    ),
    Bug(
        "cache_key_ignores_traced_helpers",
        "moegen/backends/flydsl/compile.py",
        "    return [module, *sorted(p for p in seen if p != module)]",
        "    return [module]",
        ("tests/test_compile.py", "tests/test_execute.py", "-k", "cache or traced or recompile"),
        "a warm compile cache serving kernels traced from an old flydsl_lib.py",
    ),
    Bug(
        "write_orphans_kept",
        "moegen/render/write.py",
        "        (out / p).unlink(missing_ok=True)\n",
        "        pass\n",
        ("tests/test_write.py",),
        "files of removed variants left in generated/ forever",
    ),
    Bug(
        "emulate_memory_check_skipped",
        "moegen/cli/emulate.py",
        "    if need.total <= budget:\n        return None\n",
        "    return None\n",
        ("tests/test_emulate_cli.py",),
        "moegen emulate allocating a case larger than memory: an OOM kill, exit 137, no message",
    ),
    Bug(
        "write_manifest_before_orphans",
        "moegen/render/write.py",
        "        if target.name != MANIFEST:\n            os.replace(tmp, target)\n"
        "    for p in orphans:\n        (out / p).unlink(missing_ok=True)\n"
        "        _prune_empty_dirs((out / p).parent, out)\n"
        "    for tmp, target in staged:\n        if target.name == MANIFEST:\n"
        "            os.replace(tmp, target)\n",
        "        os.replace(tmp, target)\n"
        "    for p in orphans:\n        (out / p).unlink(missing_ok=True)\n"
        "        _prune_empty_dirs((out / p).parent, out)\n",
        ("tests/test_write.py",),
        "the new MANIFEST written before the orphans are removed: a crash in between leaves "
        "orphans that no MANIFEST lists, so no later render removes them",
    ),
    Bug(
        "generated_import_path_wrong",
        "moegen/backends/base.py",
        '        return f"generated.{self.name}.{variant_name}"',
        '        return f"generated.{variant_name}"',
        ("tests/test_render.py",),
        "the registry importing generated modules from a path that does not exist",
    ),
    Bug(
        "guard_names_the_wrong_twin",
        "moegen/core/address_model.py",
        '    return v["name"].replace("_whole_tensor", "_per_expert", 1)',
        '    return v["name"]',
        ("tests/test_address_model.py", _S1_WHOLE, "-k", "guard or messages"),
        "a refusal that points the user at a variant that cannot address the shape either",
    ),
    # ---- ISA performance counters (moegen/verify/counters.py, counters_table.py) ----------
    Bug(
        "inflight_counts_only_the_retired_loads",
        "moegen/verify/counters.py",
        "                records.append(sum(queue))\n",
        "                records.append(sum(retired))\n",
        ("tests/test_counters.py",),
        "bytes in flight measured as the loads a wait retires: a software-pipelined loop "
        "(vmcnt(N>0)) reads as no better than load-wait-compute",
    ),
    Bug(
        "drain_missed_in_a_combined_waitcnt",
        "moegen/verify/counters.py",
        "        drains += waitcnt_vmcnt(insn) == 0\n",
        '        drains += insn.operands == "vmcnt(0)"\n',
        ("tests/test_counters.py",),
        "`s_waitcnt vmcnt(0) lgkmcnt(0)` not counted as a full drain of the loads",
    ),
    Bug(
        "vgpr_granule_of_4",
        "moegen/verify/counters.py",
        "    vgpr_granule: int = 8\n",
        "    vgpr_granule: int = 4\n",
        ("tests/test_counters.py",),
        "the pre-gfx90a VGPR allocation granule: occupancy overstated on CDNA3/CDNA4",
    ),
    Bug(
        "floor_direction_flipped",
        "moegen/verify/counters_table.py",
        'if value < floor if FLOORS[name] == "min" else value > floor:',
        'if value > floor if FLOORS[name] == "min" else value < floor:',
        ("tests/test_counters_table.py",),
        "a floor read the wrong way: kernels better than their floor fail, worse ones pass",
    ),
)
