"""Masked top-k: the compact per-row masks of filtered batch jobs select what dense masks do."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openpersonalize.recipes.scoring import Candidates, RowMasks, softmax_topk_rows, topk_rows


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
