"""Masked top-k: the compact per-row masks of filtered batch jobs select what dense masks do; the
fused product gives the scores, group maxima and normalisers of the product and sweep apart."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from openpersonalize.recipes.scoring import (Candidates, RowMasks, group_maxima_for, product_with_normalisers,
                                             row_log_normalisers, softmax_topk_rows, topk, topk_rows)


@st.composite
def masked_block(draw):
    rows, items = draw(st.integers(1, 12)), draw(st.sampled_from([5, 40, 700, 2000]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((rows, items)).astype(np.float32)  # distinct: no ties
    density = draw(st.sampled_from([0.0, 0.01, 0.3, 0.7, 1.0]))
    masks = [Candidates(rng.random(items) < density) for _ in range(draw(st.integers(0, 3)))]
    which = rng.integers(-1, len(masks), size=rows) if masks else np.full(rows, -1)
    hidden = rng.random((rows, items)) < draw(st.sampled_from([0.0, 0.05, 0.5]))
    hr, hc = np.nonzero(hidden)
    return scores, RowMasks(masks, which.astype(np.int64), hr.astype(np.int64), hc.astype(np.int64), items), \
        draw(st.integers(1, 30))


@settings(max_examples=150, deadline=None)
@given(masked_block())
def test_compact_masks_select_as_dense_masks(case):
    scores, masks, n = case
    dense = masks.dense()
    want_i, want_v = topk_rows(scores.copy(), n, dense)
    got_i, got_v = topk_rows(scores.copy(), n, masks)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_v, want_v)
    # Sorted rows (as the batch job orders them), and the softmax variant over whole rows.
    order = masks.order()
    want_i, want_p = softmax_topk_rows(scores[order].copy(), n, 0.7, dense[order])
    got_i, got_p = softmax_topk_rows(scores[order].copy(), n, 0.7, masks.take(order))
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_p, want_p, rtol=1e-6)
    for r in range(len(masks)):
        np.testing.assert_array_equal(masks[r], dense[r])


def test_compact_masks_never_return_hidden_items():
    scores = np.arange(10, dtype=np.float32)[None, :].repeat(2, axis=0)
    allowed = Candidates(np.arange(10) % 2 == 0)  # even items only
    masks = RowMasks([allowed], np.array([0, -1]), np.array([0, 1]), np.array([8, 9]), 10)
    idx, _ = topk_rows(scores, 3, masks)
    assert idx[0].tolist() == [6, 4, 2]  # 8 hidden for row 0
    assert idx[1].tolist() == [8, 7, 6]  # 9 hidden for row 1, no mask otherwise


@pytest.mark.parametrize("items,rows", [(100_003, 300), (13_000, 3), (5_000, 70), (1, 2)])
@pytest.mark.parametrize("temperature", [0.01, 1.0])
@pytest.mark.parametrize("odd_scores", [True, False])
def test_fused_product_matches_the_product_then_the_sweep(items, rows, temperature, odd_scores):
    """With odd scores some rows are redone the careful way; without, every row is fused."""
    rng = np.random.default_rng(items + rows)
    left = rng.standard_normal((rows, 16)).astype(np.float32)
    right = rng.standard_normal((items, 16)).astype(np.float32)
    boost = rng.standard_normal(items).astype(np.float32)
    if odd_scores:
        left[-1] = np.nan  # a row without a finite score takes the careful way
        if rows > 2:
            right[7, 0] = np.inf  # +inf and -inf scores across rows
    want = left @ right.T + boost
    want_maxima = group_maxima_for(want, 25)
    want_z = row_log_normalisers(want, temperature, want_maxima)

    got = np.empty_like(want)
    got_maxima = group_maxima_for(got, 25)
    got_z = product_with_normalisers(left, right, got, temperature, boost, got_maxima)

    # Tiles take other BLAS kernels than one product: the last bits of a score may differ.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if want_maxima is not None:
        np.testing.assert_allclose(got_maxima, want_maxima, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_z, want_z, rtol=1e-6, atol=2e-5 / temperature)
    assert np.array_equal(np.isfinite(got_z), np.isfinite(want_z))


@pytest.mark.parametrize("items", [500, 20_000])
def test_ties_at_the_last_place_go_to_the_lowest_indices_in_every_path(items):
    """Popularity counts (a cold user's row, Popularity-Count) tie a lot: whichever path selects
    (a block over candidate groups or whole rows, with a mask, softmax or not), the items tied at
    the n-th place are the lowest-indexed ones, as a single request picks them."""
    rng = np.random.default_rng(items)
    counts = rng.integers(0, 6, items).astype(np.float32)
    block = np.tile(counts, (3, 1))
    mask = rng.random(items) < 0.7
    for n in (5, 25):
        want, _ = topk(counts, n)
        idx, _ = topk_rows(block.copy(), n)
        assert all(row.tolist() == want.tolist() for row in idx), (n, idx[0], want)
        maxima = group_maxima_for(block, n)
        log_z = row_log_normalisers(block, 1.0, maxima)
        idx, _ = softmax_topk_rows(block.copy(), n, 1.0, None, log_z=log_z, maxima=maxima)
        assert all(row.tolist() == want.tolist() for row in idx), (n, idx[0], want)
        want, _ = topk(counts, n, mask)
        idx, _ = topk_rows(block.copy(), n, mask)
        assert all(row.tolist() == want.tolist() for row in idx), (n, idx[0], want)
        compact = RowMasks([Candidates(mask)], np.zeros(3, np.int64), np.empty(0, np.int64),
                           np.empty(0, np.int64), items)
        idx, _ = softmax_topk_rows(block.copy(), n, 1.0, compact)
        assert all(row.tolist() == want.tolist() for row in idx), (n, idx[0], want)
