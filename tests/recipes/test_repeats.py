"""Repeat behaviour learned from the data (recipes/repeats.py), on generated data whose answer is known.

A ratings-like catalogue (each user has each item once) must never get items back; a shop where
users re-buy staples must get them back in about the share they are re-bought, and a list that
does so must predict the next purchase better than both "always leave them out" and "never".
"""

from __future__ import annotations

import numpy as np
import pytest

from openpersonalize import synthetic
from openpersonalize.recipes.base import TrainingData, TrainingSettings
from openpersonalize.recipes.factorization import CollaborativeModel
from openpersonalize.recipes.repeats import MIN_SHARE, RepeatPolicy, measure
from openpersonalize.recipes.training import train

EASE = TrainingSettings(num_threads=1, seed=0, als_iterations=8)
LOCAL = TrainingSettings(num_threads=1, seed=0, als_iterations=8, ease_max_items=0)
ALS = TrainingSettings(num_threads=1, seed=0, als_iterations=8, ease_max_items=0, local_ease_seconds=0)
BACKENDS = {"ease": EASE, "local-ease": LOCAL, "als": ALS}


def data_of(cat: synthetic.GeneratedCatalogue, keep: np.ndarray | None = None) -> TrainingData:
    keep = np.ones(len(cat.users), bool) if keep is None else keep
    return TrainingData.from_records(cat.user_ids[cat.users[keep]], cat.item_ids[cat.items[keep]],
                                     cat.timestamps[keep], cat.event_types[keep], cat.event_values[keep])


def last_per_user(cat: synthetic.GeneratedCatalogue) -> np.ndarray:
    """A mask of each user's newest interaction (the truth of a next-item split)."""
    order = np.lexsort((cat.timestamps, cat.users))
    last = np.zeros(len(cat.users), bool)
    last[order[np.r_[cat.users[order][1:] != cat.users[order][:-1], True]]] = True
    return last


@pytest.fixture(scope="module")
def distinct():
    cat = synthetic.generate(n_users=300, n_items=200, interactions_per_user=20, seed=3, distinct=True)
    return data_of(cat)


@pytest.fixture(scope="module")
def staples():
    cat = synthetic.generate_staples(n_users=400, n_items=300, interactions_per_user=30, seed=4, repeat_share=0.6)
    truth = last_per_user(cat)
    return cat, data_of(cat, ~truth), truth


def seen_share(model, data: TrainingData, users, n: int = 25) -> float:
    seen = slots = 0
    for u in users:
        idx, _ = model.recommend(int(u), n)
        hist = set(model.history(int(u)).tolist())
        seen += sum(int(i) in hist for i in idx)
        slots += len(idx)
    return seen / slots


def test_measure_finds_no_repeats_in_distinct_data(distinct):
    profile = measure(distinct)
    assert profile.share < MIN_SHARE and profile.excludes


def test_measure_recovers_the_generated_repeat_share(staples):
    cat, data, _ = staples
    model = train("aws-user-personalization", data, {}, seed="arn:test", settings=EASE).model
    profile = measure(data)
    assert 0.5 <= profile.share <= 0.7, profile.share
    assert model.meta["repeat_share"] == pytest.approx(profile.share)
    # Staples (bought eight times as eagerly) weigh more than the rest among a user's items.
    u = 0
    start, end = model.arrays["hist_indptr"][u], model.arrays["hist_indptr"][u + 1]
    assert np.asarray(model.arrays["repeat_pair_weight"][start:end]).max() > 1.0


def test_pair_weights_line_up_with_the_histories(staples):
    """Each history entry's weight is its (user, item)'s times had x the item's weight x the
    event type weight of its latest interaction, entry by entry, counted here the slow way."""
    from openpersonalize.recipes.scoring import histories

    _, data, _ = staples
    data = data.subset(np.random.default_rng(3).permutation(data.n_interactions)[:4000])  # rows out of time order
    profile = measure(data)
    indptr, items = histories(data)
    latest_type, had = {}, {}
    for k in np.lexsort((np.arange(data.n_interactions), data.timestamp)):
        pair = (int(data.user[k]), int(data.item[k]))
        had[pair] = had.get(pair, 0) + 1
        latest_type[pair] = int(data.event_type[k])
    ratios = {}
    for u in range(data.n_users):
        for j in range(indptr[u], indptr[u + 1]):
            pair = (u, int(items[j]))
            expected = had[pair] * profile.item_weight[pair[1]]
            ratios.setdefault(latest_type[pair], []).append(profile.pair_weight[j] / expected)
    # What is left once times had and the item weight are divided out is one factor per event type.
    for t, values in ratios.items():
        np.testing.assert_allclose(values, values[0], rtol=1e-5, err_msg=str(data.event_types[t]))
    assert len(profile.pair_weight) == len(items)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_no_repeats_means_no_seen_items(distinct, backend):
    model = train("aws-user-personalization", distinct, {}, seed="arn:test", settings=BACKENDS[backend]).model
    users = np.arange(0, distinct.n_users, 7)
    assert seen_share(model, distinct, users) == 0.0
    idx, _ = model.recommend_batch(users, 25)
    for row, u in zip(idx, users):
        assert not set(row.tolist()) & set(model.history(int(u)).tolist())
    # Ranking: the user's items get no probability, so they rank last.
    u = int(users[0])
    S = model.scores_for_history(model.history(u), u)
    assert np.all(np.isneginf(S[model.history(u)]))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_repeat_heavy_lists_hold_seen_items_in_their_measure(staples, backend):
    cat, data, _ = staples
    model = train("aws-user-personalization", data, {}, seed="arn:test", settings=BACKENDS[backend]).model
    users = np.arange(0, data.n_users, 5)
    share = seen_share(model, data, users)
    measured = model.meta["repeat_share"]
    # The cap is ceil(R_u x n) and the most probable items fill it on this data: about R, never far above.
    assert measured - 0.2 <= share <= measured + 0.1, (share, measured)
    idx, _ = model.recommend_batch(users, 25)
    single = [model.recommend(int(u), 25)[0].tolist() for u in users]
    assert [[i for i in row.tolist() if i >= 0] for row in idx] == single


def hits(lists, truth_items) -> float:
    return float(np.mean([t in row[:10] for row, t in zip(lists, truth_items)]))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_learned_repeats_beat_always_and_never_excluding(staples, backend):
    cat, data, truth = staples
    model = train("aws-user-personalization", data, {}, seed="arn:test", settings=BACKENDS[backend]).model
    truth_users = np.searchsorted(data.user_ids, cat.user_ids[cat.users[truth]])
    truth_items = np.searchsorted(data.item_ids, cat.item_ids[cat.items[truth]])
    learned, never, always = [], [], []
    for u in truth_users.tolist():
        hist = model.history(u)
        learned.append(model.recommend(u, 10)[0].tolist())
        raw = CollaborativeModel.scores_for_history(model, hist, u)
        never.append(np.argsort(-raw, kind="stable")[:10].tolist())
        raw[hist] = -np.inf
        always.append(np.argsort(-raw, kind="stable")[:10].tolist())
    h_learned, h_never, h_always = hits(learned, truth_items), hits(never, truth_items), hits(always, truth_items)
    assert h_learned > max(h_never, h_always), (h_learned, h_never, h_always)


def test_policy_gives_the_mixture_it_promises():
    """After adjust, a softmax over the row puts probability R on the user's items, spread by
    their weights, and 1 - R on the rest in the model's own proportions."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=50).astype(np.float64)
    raw = scores.copy()
    policy = RepeatPolicy(0.3, np.array([0.3]), np.ones(50), np.ones(3), temperature=0.7)
    items, weights = np.array([4, 9, 20]), np.array([1.0, 2.0, 1.0])
    policy.adjust(scores, items, weights, 0.3)
    p = np.exp(scores / 0.7)
    p /= p.sum()
    assert p[items].sum() == pytest.approx(0.3)
    assert p[items] / p[items].sum() == pytest.approx(weights / weights.sum())
    rest = np.setdiff1d(np.arange(50), items)
    q = np.exp(raw[rest] / 0.7)
    assert p[rest] / p[rest].sum() == pytest.approx(q / q.sum())
    assert policy.cap(25, 0.3) == 8 and policy.cap(25, 0.0) == 0


def test_a_history_sent_since_training_counts_too(staples):
    """Real-time events: items in the request's history that training never saw for the user
    still come back in the user's measure (weighted by how often they occur)."""
    _, data, _ = staples
    model = train("aws-user-personalization", data, {}, seed="arn:test", settings=EASE).model
    u = 3
    hist = np.r_[model.history(u), [i for i in range(data.n_items) if i not in set(model.history(u).tolist())][:2]]
    idx, _ = model.recommend(hist, 25)
    assert len(idx) == 25
    assert sum(int(i) in set(hist.tolist()) for i in idx) <= int(np.ceil(model.meta["repeat_share"] * 25))


def test_big_data_is_sampled_first_and_measured_whole_when_it_repeats(distinct, staples, monkeypatch):
    """Above SAMPLE_INTERACTIONS a sample of users decides whether there are repeats at all; data
    with repeats is still measured whole, so the profile is the same as without sampling."""
    from openpersonalize.recipes import repeats

    _, data, _ = staples
    whole = measure(data)
    monkeypatch.setattr(repeats, "SAMPLE_INTERACTIONS", 1000)
    sampled = measure(data)
    assert sampled.share == pytest.approx(whole.share)
    np.testing.assert_allclose(sampled.pair_weight, whole.pair_weight)
    quick = measure(distinct)
    assert quick.excludes and quick.share < MIN_SHARE


@pytest.mark.parametrize("n", [3, 10])
def test_batch_lists_are_the_single_lists_when_own_items_crowd_the_top(n):
    """Users re-buy most of what they had, so their own items fill the top of their scores and
    the policy skips most of them: batch scoring (which selects the other items and merges the
    user's best own items back, here over candidate groups, with each kind of mask) must give
    every user the single request's list, full length."""
    from openpersonalize.recipes.scoring import Candidates, RowMasks

    cat = synthetic.generate_staples(n_users=240, n_items=5000, interactions_per_user=30, seed=5, repeat_share=0.7)
    data = data_of(cat)
    model = train("aws-user-personalization", data, {}, seed="arn:test", settings=ALS).model
    users = np.r_[np.arange(0, data.n_users, 2), -1]
    rng = np.random.default_rng(0)
    one_row = rng.random(data.n_items) < 0.8
    hidden_rows = np.repeat(np.arange(0, len(users), 4), 3)
    hidden_cols = np.concatenate([model.history(int(users[r]))[:3] for r in range(0, len(users), 4)])
    hidden_rows = hidden_rows[:len(hidden_cols)]
    per_row = RowMasks([Candidates(one_row), Candidates(rng.random(data.n_items) < 0.5)],
                       rng.integers(-1, 2, len(users)), hidden_rows, hidden_cols.astype(np.int64), data.n_items)
    crowded = 0
    for mask in (None, one_row, per_row):
        idx, probs = model.recommend_batch(users, n, mask)
        for r, u in enumerate(users.tolist()):
            row_mask = None if mask is None else (mask if isinstance(mask, np.ndarray) else mask.row(r))
            single, single_probs = model.recommend(u, n, candidates_mask=row_mask)
            assert idx[r].tolist() == single.tolist(), (u, idx[r], single)
            np.testing.assert_allclose(probs[r], single_probs, rtol=1e-4, atol=1e-12, err_msg=f"{u} {type(mask)}")
            hist = model.history(u) if u >= 0 else np.empty(0, int)
            crowded += int(np.isin(model.recommend(u, 2 * n, candidates_mask=row_mask)[0], hist).sum() > 1)
    assert crowded > len(users)  # the case is exercised: own items crowd the top for most users


@pytest.mark.parametrize("n", [3, 25])
def test_batch_lists_are_the_single_lists_when_own_items_are_left_out(n):
    """No repeats: a batch block's normalisers come from the fused product less the user's own
    items (RepeatPolicy.adjust_block given the normalisers), a single request's from a sweep
    over the items left. Both must give the same lists and probabilities, with and without a
    mask, over candidate groups (n 3) and without them (n 25 on this catalogue)."""
    cat = synthetic.generate(n_users=200, n_items=6000, interactions_per_user=25, seed=6, distinct=True)
    data = data_of(cat)
    model = train("aws-user-personalization", data, {}, seed="arn:test", settings=ALS).model
    assert model._repeat_policy().excludes
    users = np.r_[np.arange(0, data.n_users, 3), -1]
    one_row = np.random.default_rng(1).random(data.n_items) < 0.7
    for mask in (None, one_row):
        idx, probs = model.recommend_batch(users, n, mask)
        for r, u in enumerate(users.tolist()):
            single, single_probs = model.recommend(u, n, candidates_mask=mask)
            assert idx[r].tolist() == single.tolist(), (u, idx[r], single)
            np.testing.assert_allclose(probs[r], single_probs, rtol=1e-4, atol=1e-12, err_msg=f"{u} {mask is None}")
            assert not set(idx[r].tolist()) & set(model.history(u).tolist() if u >= 0 else [])


def test_batch_lists_are_the_single_lists_for_refolded_recency_rows():
    """With the recency mask a factor model folds a long history in again (its latest ``bptt``
    items re-weighted) instead of using the user's trained factors: the fused batch product
    rewrites those rows, with their normalisers and group maxima, after the block's product.
    Every list and probability must be the single request's, with and without a mask."""
    cat = synthetic.generate_staples(n_users=160, n_items=5000, interactions_per_user=30, seed=7, repeat_share=0.4)
    data = data_of(cat)
    config = {"algorithmHyperParameters": {"recency_mask": "true", "bptt": "8"}}
    model = train("aws-user-personalization", data, config, seed="arn:test", settings=ALS).model
    assert model.meta["recency"] and model.meta["backend"] == "als"
    users = np.r_[np.arange(0, data.n_users, 2), -1]
    refolded = model.history_lengths(users) > 8
    assert refolded.sum() > len(users) // 2  # the case is exercised
    mask = np.random.default_rng(2).random(data.n_items) < 0.6
    for n, row_mask in ((3, None), (25, mask)):
        idx, probs = model.recommend_batch(users, n, row_mask)
        for r, u in enumerate(users.tolist()):
            single, single_probs = model.recommend(u, n, candidates_mask=row_mask)
            assert idx[r].tolist() == single.tolist(), (u, idx[r], single)
            np.testing.assert_allclose(probs[r], single_probs, rtol=1e-4, atol=1e-12, err_msg=str(u))
