"""Metric definitions and the §5.1 hold-out split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openpersonalize import evaluation as ev
from openpersonalize.recipes.base import TrainingData


def test_worked_check_from_the_spec():
    ranked = [10, 1, 11, 12, 2]  # relevant items 1 and 2 at positions 2 and 5
    relevant = {1, 2}
    assert ev.reciprocal_rank_at(ranked, relevant) == 0.5
    assert ev.precision_at(ranked, relevant, 5) == pytest.approx(0.4)
    expected = (1 / math.log(3) + 1 / math.log(6)) / (1 / math.log(2) + 1 / math.log(3))
    assert ev.ndcg_at(ranked, relevant, 5) == pytest.approx(expected)
    assert ev.ndcg_at(ranked, relevant, 5) == pytest.approx(0.6241, abs=1e-4)


def test_edge_cases():
    assert ev.reciprocal_rank_at([5, 6], {7}) == 0.0
    assert ev.ndcg_at([1, 2], {1, 2}, 5) == 1.0
    assert ev.ndcg_at([3, 1], {1: 0.5, 3: 1.0}, 25) == 1.0  # weighted gains in ideal order
    m = ev.ranking_metrics([[1, 2], [3, 4]], [{2}, {9}], n_items=8)
    assert m["coverage"] == 0.5
    assert m["mean_reciprocal_rank_at_25"] == 0.25
    assert ev.auc(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1, 0, 1, 0])) == 1.0


def test_holdout_split_follows_the_protocol():
    users = [f"u{u}" for u in range(40) for _ in range(10)] + ["solo"]
    items = [f"i{(u * 7 + k) % 30}" for u in range(40) for k in range(10)] + ["i0"]
    times = [u * 100 + (9 - k) for u in range(40) for k in range(10)] + [5]  # newest first in input
    data = TrainingData.from_records(users, items, times)
    split = ev.user_holdout(data, seed=ev.seed_from("arn:x"))
    assert len(split.users) == 4  # 10 % of the 40 eligible users; "solo" has one interaction
    solo = int(np.searchsorted(data.user_ids, "solo"))
    assert solo not in split.users.tolist()
    for u, hist, truth in zip(split.users, split.histories, split.truths):
        rows = np.flatnonzero(data.user == u)
        newest = rows[np.argmax(data.timestamp[rows])]
        assert truth == {int(data.item[newest])}  # round(0.1 * 10) = 1 newest interaction
        assert len(hist) == 9 and int(data.item[newest]) not in hist.tolist()
        assert int(hist[-1]) == int(data.item[rows[np.argsort(data.timestamp[rows])][-2]])
    assert not np.isin(split.train.user, split.users).any()
    again = ev.user_holdout(data, seed=ev.seed_from("arn:x"))
    assert again.users.tolist() == split.users.tolist()


def test_deduplicate_drops_only_identical_rows():
    data = TrainingData.from_records(["a", "a", "a", "b"], ["x", "x", "x", "x"], [1, 1, 2, 1],
                                     ["v", "v", "v", "v"], [None, None, 1.0, None])
    out = ev.deduplicate(data)
    assert out.n_interactions == 3
    assert sorted(zip(out.user.tolist(), out.timestamp.tolist())) == [(0, 1), (0, 2), (1, 1)]


def test_deduplicate_keeps_the_first_of_each_identical_row_on_many_rows():
    rng = np.random.default_rng(3)
    n = 20_000
    users, items = rng.integers(0, 30, n), rng.integers(0, 20, n)
    times, values = rng.integers(0, 5, n), np.where(rng.random(n) < 0.5, None, rng.integers(0, 2, n).astype(float))
    data = TrainingData.from_records([f"u{u}" for u in users], [f"i{i}" for i in items], times,
                                     [f"t{t % 2}" for t in times], list(values))
    out = ev.deduplicate(data)
    seen, expected = set(), []
    for row in zip(data.user.tolist(), data.item.tolist(), data.timestamp.tolist(), data.event_type.tolist(),
                   np.nan_to_num(data.event_value, nan=-1.0).tolist()):
        if row not in seen:
            seen.add(row)
            expected.append(row)
    got = list(zip(out.user.tolist(), out.item.tolist(), out.timestamp.tolist(), out.event_type.tolist(),
                   np.nan_to_num(out.event_value, nan=-1.0).tolist()))
    assert got == expected and len(got) < n
