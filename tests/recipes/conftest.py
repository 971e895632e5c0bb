from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from openpersonalize.recipes.base import TrainingSettings  # noqa: E402
from openpersonalize.recipes.training import train  # noqa: E402

from tests.recipes.synthetic import make_world  # noqa: E402

SETTINGS = TrainingSettings(num_threads=1, seed=0, als_iterations=8)


@pytest.fixture(scope="session")
def world():
    return make_world()


@pytest.fixture(scope="session")
def trained(world):
    """recipe name -> TrainResult, trained once per session."""
    cache = {}

    def get(recipe: str):
        if recipe not in cache:
            cache[recipe] = train(recipe, world.data, {}, seed="arn:test", settings=SETTINGS)
        return cache[recipe]

    return get
