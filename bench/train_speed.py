"""Training speed: User-Personalization on a big catalogue (the ALS path) against a direct
implicit ALS fit with the same factors and iterations, in the same run.

    python bench/train_speed.py [interactions users items] [--train]
    (default 10,000,000 200,000 50,000; --train also times the whole train() with metrics)

Data are generated (power-law item popularity). Prints both wall times and their ratio.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from openpersonalize.recipes.base import HyperParameters, TrainingSettings, TrainingData  # noqa: E402
from openpersonalize.recipes.factorization import fit_als  # noqa: E402
from openpersonalize.recipes.registry import RECIPE_BY_NAME, algorithm_for  # noqa: E402


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n, users, items = (int(x) for x in (args[:3] if len(args) >= 3 else (10_000_000, 200_000, 50_000)))
    rng = np.random.default_rng(0)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    data = TrainingData(
        user_ids=np.char.add("u", np.arange(users).astype(str)), item_ids=np.char.add("i", np.arange(items).astype(str)),
        user=rng.integers(0, users, n, dtype=np.int32),
        item=rng.choice(items, size=n, p=pop / pop.sum()).astype(np.int32),
        timestamp=np.sort(rng.integers(1_600_000_000, 1_700_000_000, n)),
        event_type=np.zeros(n, np.int16), event_types=np.array([""]), event_value=np.full(n, np.nan, np.float32))
    settings = TrainingSettings(als_iterations=15)
    params = HyperParameters.parse(RECIPE_BY_NAME["aws-user-personalization"]).replace(_recipe="x")
    factors = params["hidden_dimension"]

    t = time.perf_counter()
    X = sp.csr_matrix((np.ones(n, np.float32), (data.user, data.item)), shape=(users, items))
    X.data[:] = 1.0
    fit_als(X, factors, settings)
    direct = time.perf_counter() - t

    t = time.perf_counter()
    model = algorithm_for("aws-user-personalization").fit(data, params, settings)
    ours = time.perf_counter() - t
    assert model.meta["backend"] == "als"
    whole = None
    if "--train" in sys.argv:  # the whole job body: split model, metrics, fold-in
        from openpersonalize.recipes.training import train

        t = time.perf_counter()
        result = train("aws-user-personalization", data, {}, seed="bench", settings=settings)
        whole = time.perf_counter() - t
        assert result.model.meta["backend"] == "als"
    print(f"{n:,} interactions, {users:,} users, {items:,} items, {factors} factors, "
          f"{settings.als_iterations} iterations")
    if whole is not None:
        print(f"train() with metrics:                  {whole:7.1f} s   ratio {whole / direct:.2f}")
    print(f"direct implicit ALS (CSR build + fit): {direct:7.1f} s")
    print(f"aws-user-personalization fit:          {ours:7.1f} s   ratio {ours / direct:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
