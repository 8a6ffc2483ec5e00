"""moegen.runtime.preshuffle against a straightforward element loop, and its round trip."""

import pytest
import torch

from moegen.runtime import preshuffle


def _loop_shuffle(w: torch.Tensor) -> torch.Tensor:
    """The layout written out element by element from its definition (one [N, K] slab)."""
    n_dim, k_dim = w.shape
    kp = 16 // w.element_size()
    flat = torch.empty(n_dim * k_dim, dtype=w.dtype)
    for n in range(n_dim):
        for k in range(k_dim):
            group, n_in = divmod(n, 16)
            block, k_in = divmod(k, 32)
            sub, k_el = divmod(k_in, kp)
            flat[
                ((group * (k_dim // 32) + block) * (32 // kp) + sub) * 16 * kp + n_in * kp + k_el
            ] = w[n, k]
    return flat.view(n_dim, k_dim)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.uint8])
def test_matches_the_element_loop(dtype):
    gen = torch.Generator().manual_seed(1)
    w = (torch.randint(0, 250, (32, 64), generator=gen)).to(dtype)
    got = preshuffle.shuffle_weight(w)
    assert torch.equal(got, _loop_shuffle(w))
    for n, k in [(0, 0), (17, 5), (31, 63), (3, 40)]:
        off = preshuffle.element_offset(n, k, 64, w.element_size())
        assert got.flatten()[off] == w[n, k]


def test_one_wave_load_is_contiguous():
    """Lane l's 16 bytes at byte 16 * l of a block: row l % 16, K [(l // 16) * 8, +8)."""
    w = torch.arange(16 * 32, dtype=torch.int16).view(16, 32)
    flat = preshuffle.shuffle_weight(w).flatten()
    for lane in range(64):
        assert (
            flat[lane * 8 : lane * 8 + 8].tolist()
            == w[lane % 16, (lane // 16) * 8 : (lane // 16) * 8 + 8].tolist()
        )


def test_round_trip_and_batch_dims():
    w = torch.randn(3, 48, 96).to(torch.bfloat16)
    s = preshuffle.shuffle_weight(w)
    assert not torch.equal(s, w)
    assert torch.equal(preshuffle.unshuffle_weight(s), w)
    assert torch.equal(s[1], preshuffle.shuffle_weight(w[1]))


def test_row_groups_shuffle_in_place_of_their_rows():
    """A 16-row-aligned slice shuffles to the same slice of the whole (lazy filling relies on it)."""
    w = torch.randn(2, 64, 64).to(torch.float16)
    whole = preshuffle.shuffle_weight(w)
    dst = torch.zeros_like(w)
    preshuffle.shuffle_rows_into(dst, w, (1,), range(16, 48))
    assert torch.equal(dst[1, 16:48], whole[1, 16:48])
    assert not dst[0].any() and not dst[1, :16].any() and not dst[1, 48:].any()
    with pytest.raises(ValueError, match="aligned"):
        preshuffle.shuffle_rows_into(dst, w, (1,), range(8, 24))


def test_bad_shape_names_the_fix():
    with pytest.raises(ValueError, match="multiple of 16"):
        preshuffle.shuffle_weight(torch.zeros(8, 64, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="multiple of 32"):
        preshuffle.shuffle_weight(torch.zeros(16, 48, dtype=torch.bfloat16))
