"""Which collaborative backend a training can afford, from the data's size and this machine's speed.

Three backends score a history by item-to-item weights or factors (recipes/factorization.py):

* ``ease``: the dense closed form. The best ranking on every data set measured, but one
  inversion of an items x items matrix costs n^3 operations and five n^2 float32 buffers of
  memory: seconds at 5,000 items, minutes at 12,000, tens of minutes at 20,000.
* ``local-ease``: the same regression per item over its nearest co-occurring items
  (recipes/local_ease.py). It costs the co-occurrence matrix (the sum over users of their
  history length squared) plus one small solve per item, and ranks within a few percent of EASE,
  better than ALS by a wide margin on sparse catalogues.
* ``als``: implicit's ALS. Linear in the interactions, so it is what remains when even the
  co-occurrence matrix is too big (long histories over a big catalogue).

EASE's time is estimated from a matrix product timed on this machine (an inversion runs at
about a third of the product's rate), so a faster machine keeps EASE for bigger catalogues.
Neighbourhood EASE's time is dominated by cutting blocks out of the co-occurrence matrix, which
is bound by memory traffic and grows with the co-occurrence work; it is estimated from that.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from .base import TrainingSettings

INVERSION_EFFICIENCY = 0.3  # an n x n inversion runs at about this share of the GEMM rate (measured)
EASE_BUFFERS = 5  # float32 n x n buffers alive at EASE's peak: Gram, LAPACK's copy, inverse, weights, result
LOCAL_SECONDS_PER_PRODUCT = 1e-6  # neighbourhood EASE, one fit, per co-occurrence product (measured, 2 cores)


@functools.lru_cache(maxsize=1)
def gemm_rate() -> float:
    """Floating-point operations per second of a float32 matrix product here (the best of three)."""
    a = np.random.default_rng(0).random((768, 768), dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 768**3 / max(best, 1e-9)


@dataclass(frozen=True)
class Plan:
    """The backend chosen, and why (DescribeSolutionVersion's tunedHPOParams shows ``reason``)."""

    backend: str
    reason: str
    tune_l2: bool = False  # whether there is time to choose EASE's l2 on a validation split


def ease_seconds(n_items: int) -> float:
    return n_items**3 / (INVERSION_EFFICIENCY * gemm_rate())


def ease_bytes(n_items: int) -> int:
    return EASE_BUFFERS * 4 * n_items * n_items


def cooccurrence_products(per_user: np.ndarray) -> int:
    """The work of X'X (and a bound on its entries): the sum of squared history lengths."""
    per_user = np.asarray(per_user, dtype=np.float64)
    return int((per_user * per_user).sum())


def local_ease_seconds(products: int) -> float:
    return products * LOCAL_SECONDS_PER_PRODUCT


def plan(n_items: int, per_user: np.ndarray, settings: TrainingSettings) -> Plan:
    """The backend for ``n_items`` items and users with ``per_user`` interactions each.

    Either EASE runs two fits (the metrics model and the final one), six when its l2 is tuned;
    dense EASE is chosen when those fit ``settings.ease_seconds`` and
    ``settings.training_memory_mb``, else neighbourhood EASE when they fit
    ``settings.local_ease_seconds``, else ALS.
    """
    products = cooccurrence_products(per_user)
    local = local_ease_seconds(products)
    if products <= settings.local_ease_neighbours * max(n_items, 1) and 2 * local <= settings.local_ease_seconds:
        # Items co-occur with fewer others than a neighbourhood holds: neighbourhood EASE solves
        # (nearly) the same regressions as the dense inverse, at a fraction of its cost.
        return Plan("local-ease", f"{n_items} items, sparse co-occurrence ({products / max(n_items, 1):.0f} "
                    f"per item at most): neighbourhood EASE is EASE's regression", tune_l2=6 * local <= settings.local_ease_seconds)
    if n_items <= settings.ease_max_items:
        seconds, memory = ease_seconds(n_items), ease_bytes(n_items)
        if memory <= settings.training_memory_mb * 2**20 and 2 * seconds <= settings.ease_seconds:
            tune = n_items <= settings.ease_tune_max_items and 6 * seconds <= settings.ease_seconds
            return Plan("ease", f"{n_items} items: dense EASE estimated at {seconds:.1f} s per inversion",
                        tune_l2=tune)
    if 2 * local <= settings.local_ease_seconds:
        return Plan("local-ease", f"{n_items} items: dense EASE over budget; neighbourhood EASE estimated at "
                    f"{local:.1f} s per fit", tune_l2=6 * local <= settings.local_ease_seconds)
    return Plan("als", f"{n_items} items: neighbourhood EASE estimated at {local:.0f} s per fit, over budget")
