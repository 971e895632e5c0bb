"""The one place that knows every recipe: its trainer, its capabilities, and what a row serves.

Adding a recipe is its module (an :class:`~.base.Algorithm` that declares its
:class:`~.capabilities.Capabilities`) plus one line in ``FAMILIES``. Legacy names train and
serve as their successors (``LEGACY``); domain use cases train a custom recipe (``use_cases``).
Callers ask :func:`capabilities` or :func:`served_recipe`, never a recipe's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .actions import NextBestAction
from .base import Algorithm
from .capabilities import Capabilities
from .catalogue import RECIPES, Recipe
from .factorization import PersonalizedRanking, UserPersonalization
from .neighbors import SimilarItems, Sims
from .popularity import PopularityCount, TrendingNow
from .segmentation import ItemAffinity, ItemAttributeAffinity
from .semantic import SemanticSimilarity
from .sequential import SequentialPersonalization
from .use_cases import USE_CASES, UseCase

FAMILIES: tuple[type[Algorithm], ...] = (
    UserPersonalization, SequentialPersonalization, PersonalizedRanking, PopularityCount, TrendingNow, Sims, SimilarItems,
    SemanticSimilarity, ItemAffinity, ItemAttributeAffinity, NextBestAction,
)

REGISTRY: dict[str, type[Algorithm]] = {name: cls for cls in FAMILIES for name in cls.recipes}
RECIPE_BY_NAME: dict[str, Recipe] = {r.name: r for r in RECIPES}

# Legacy recipe -> (the recipe it trains and serves as, the API rules where AWS differs).
# recipes-and-metrics.md §1: only aws-hrnn-coldstart keeps trainingMode UPDATE.
# The HRNN recipes are sequence models, as -v2 is; they keep their own API rules (no reasons, no
# metadata unless asked, campaigns accept itemExplorationConfig; Coldstart trains UPDATE).
_HRNN_RULES = {"reasons": False, "metadata_by_default": False, "exploration": True}
LEGACY: dict[str, tuple[str, dict]] = {
    "aws-hrnn": ("aws-user-personalization-v2", _HRNN_RULES),
    "aws-hrnn-metadata": ("aws-user-personalization-v2", _HRNN_RULES),
    "aws-hrnn-coldstart": ("aws-user-personalization-v2", {**_HRNN_RULES, "training_update": True}),
}
DEFAULT_RECIPE = "aws-user-personalization"  # what an AutoML solution serves before it has trained


def _name(recipe: str) -> str:
    return recipe.rsplit("/", 1)[-1]


def resolve(recipe: str) -> str:
    """A recipe name or ARN -> the trainable recipe name (legacy names mapped)."""
    name = _name(recipe)
    return LEGACY[name][0] if name in LEGACY else name


def algorithm_for(recipe: str) -> Algorithm:
    """The trainer of a recipe (name or ARN); KeyError for recipes without one."""
    name = resolve(recipe)
    if name not in REGISTRY:
        raise KeyError(f"no trainable model for recipe {recipe}")
    return REGISTRY[name]()


def trainable() -> list[str]:
    """Every catalogue recipe name that trains (legacy ones included)."""
    return [r.name for r in RECIPES if resolve(r.name) in REGISTRY]


def use_case(recipe: str) -> UseCase | None:
    """The domain use case of a recipe name or ARN (None for custom recipes)."""
    return USE_CASES.get(_name(recipe))


def _declared(name: str) -> Capabilities:
    if name in LEGACY:
        successor, changes = LEGACY[name]
        return _declared(successor).but(**changes)
    if name in USE_CASES:
        return _declared(USE_CASES[name].recipe)
    return REGISTRY[name].capabilities[name]


CAPABILITIES: dict[str, Capabilities] = {r.name: _declared(r.name) for r in RECIPES}
# For messages that name the recipes having a capability.
SEGMENT_RECIPES = tuple(n for n in REGISTRY if CAPABILITIES[n].segment_queries_per_file)
THEME_RECIPES = tuple(n for n in REGISTRY if CAPABILITIES[n].theme_generation)
EXPLORING_RECIPES = tuple(r.name for r in RECIPES if CAPABILITIES[r.name].exploration and not r.domain)
UPDATE_RECIPES = tuple(r.name for r in RECIPES if CAPABILITIES[r.name].training_update and not r.domain)
INFLUENCED_RECIPES = tuple(r.name for r in RECIPES if CAPABILITIES[r.name].ranking_influence and not r.domain)
INCREMENTAL_RECIPES = tuple(r.name for r in RECIPES if CAPABILITIES[r.name].incremental_update and not r.domain)


def capabilities(recipe: str) -> Capabilities:
    """What a recipe (name or ARN) can do. A legacy recipe has its successor's capabilities
    with AWS's own API rules; a domain use case has its trained recipe's. KeyError when the
    recipe is not in the catalogue. A dictionary lookup: cheap enough for every request."""
    return CAPABILITIES[_name(recipe)]


@dataclass(frozen=True)
class ServedRecipe:
    """The recipe a row (solution, solution version or recommender) trains or serves.

    ``name`` is the catalogue recipe the user chose (``aws-hrnn``, or a use case's recipe for a
    recommender); ``trains_as`` the recipe whose model is trained (``aws-user-personalization``
    for ``aws-hrnn``); ``capabilities`` what it can do.
    """

    name: str
    trains_as: str
    capabilities: Capabilities

    @property
    def recipe(self) -> Recipe:
        return RECIPE_BY_NAME[self.name]


def served_recipe(doc: Mapping) -> ServedRecipe:
    """Which recipe, with which capabilities, a resource's description serves.

    A trained row names it (``_trainedRecipe``: what AutoML chose, or a use case's recipe);
    otherwise its ``recipeArn`` does (a use case maps to its recipe); an AutoML solution that
    has not trained yet serves the default recipe.
    """
    name = doc.get("_trainedRecipe") or _name(doc.get("recipeArn") or "") or DEFAULT_RECIPE
    found = use_case(name)
    if found is not None:
        name = found.recipe
    return ServedRecipe(name, resolve(name), capabilities(name))
