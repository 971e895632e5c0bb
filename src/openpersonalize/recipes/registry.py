"""Recipe name -> the Algorithm that trains it. One line per recipe family; legacy names train
as their successors through ``catalogue.TRAINS_AS``."""

from __future__ import annotations

from .actions import NextBestAction
from .base import Algorithm
from .catalogue import RECIPES, TRAINS_AS
from .factorization import PersonalizedRanking, UserPersonalization
from .neighbors import SimilarItems, Sims
from .popularity import PopularityCount, TrendingNow
from .segmentation import ItemAffinity, ItemAttributeAffinity
from .semantic import SemanticSimilarity

FAMILIES: tuple[type[Algorithm], ...] = (
    UserPersonalization, PersonalizedRanking, PopularityCount, TrendingNow, Sims, SimilarItems,
    SemanticSimilarity, ItemAffinity, ItemAttributeAffinity, NextBestAction,
)

REGISTRY: dict[str, type[Algorithm]] = {name: cls for cls in FAMILIES for name in cls.recipes}
RECIPE_BY_NAME = {r.name: r for r in RECIPES}


def resolve(recipe: str) -> str:
    """A recipe name or ARN -> the trainable recipe name (legacy names mapped)."""
    name = recipe.rsplit("/", 1)[-1]
    return TRAINS_AS.get(name, name)


def algorithm_for(recipe: str) -> Algorithm:
    """The trainer of a recipe (name or ARN); KeyError for recipes without one."""
    name = resolve(recipe)
    if name not in REGISTRY:
        raise KeyError(f"no trainable model for recipe {recipe}")
    return REGISTRY[name]()


def trainable() -> list[str]:
    """Every catalogue recipe name that trains (legacy ones included)."""
    return [r.name for r in RECIPES if resolve(r.name) in REGISTRY]
