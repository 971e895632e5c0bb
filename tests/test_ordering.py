"""ordering.stable_order against numpy's lexsort, on the kinds of keys interactions have."""

import numpy as np
import pytest

from openpersonalize.ordering import stable_order


def _expected(*keys):
    return np.lexsort(keys[::-1]) if len(keys) > 1 else np.argsort(keys[0], kind="stable")


@pytest.mark.parametrize("seed", range(3))
def test_one_key_with_ties_keeps_positions(seed):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 50, 10_000).astype(np.int32)
    assert np.array_equal(stable_order(users), _expected(users))


def test_several_keys_in_one_pass_and_in_several():
    rng = np.random.default_rng(4)
    user = rng.integers(0, 1000, 20_000)
    time = 1_600_000_000 + rng.integers(0, 90 * 86400, 20_000)
    item = rng.integers(0, 2**31, 20_000)  # too wide to share a pass with the others
    assert np.array_equal(stable_order(user, time), _expected(user, time))
    assert np.array_equal(stable_order(user, time, item), _expected(user, time, item))
    assert np.array_equal(stable_order(item, user), _expected(item, user))


def test_negative_small_unsigned_and_boolean_keys():
    rng = np.random.default_rng(5)
    signed = rng.integers(-32768, 32767, 5_000).astype(np.int16)  # a range wider than int16 holds
    flags = rng.random(5_000) < 0.5
    big = (np.uint64(2**63) + rng.integers(0, 1000, 5_000).astype(np.uint64))
    assert np.array_equal(stable_order(signed), _expected(signed))
    assert np.array_equal(stable_order(flags, signed), _expected(flags, signed))
    assert np.array_equal(stable_order(big), _expected(big))


def test_keys_too_wide_or_not_integers_use_numpy():
    rng = np.random.default_rng(6)
    wide = rng.integers(-2**62, 2**62, 3_000)
    floats = rng.random(3_000).round(2)
    assert np.array_equal(stable_order(wide), _expected(wide))
    assert np.array_equal(stable_order(floats, wide), _expected(floats, wide))


def test_empty_and_single_row():
    assert stable_order(np.zeros(0, np.int64)).tolist() == []
    assert stable_order(np.array([7])).tolist() == [0]


def test_keys_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        stable_order(np.arange(3), np.arange(4))
