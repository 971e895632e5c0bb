"""What a recipe's model can do, declared once, on the recipe.

Every caller that must know whether a recipe scores its output, explores new items, answers
without a user, runs in a batch job or takes in new data between trainings asks the recipe's
:class:`Capabilities` (through :func:`openpersonalize.recipes.registry.capabilities` or
:func:`~openpersonalize.recipes.registry.served_recipe`) instead of testing its name. Each
:class:`~openpersonalize.recipes.base.Algorithm` declares one ``Capabilities`` per catalogue
recipe it trains; the conformance suite (``tests/recipes/test_capabilities.py``) checks each
declared capability against the behaviour of a trained model and of the running service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# How GetSolutionMetrics measures a recipe (evaluation.solution_metrics dispatches on it).
METRIC_PROTOCOLS = ("next-items", "trending", "ranking", "related-items", "item-text", "segments", "actions")
# The protocols whose metrics model is fit on the users outside a 10 % hold-out (so a big model
# can fold those users in afterwards instead of fitting all of them again).
USER_HOLDOUT = ("next-items", "trending", "ranking", "related-items")

# How a served model takes in new data between trainings (jobs/refresh.py):
FOLD_IN = "fold-in"  # when new data arrived: an UPDATE training from the current model (the algorithm's
# ``update``, which folds new users and items in; an algorithm without one fits again)
REFIT = "refit"  # the model is cheap and time-dependent: fit again on all the data every period

# The fields of a batch inference input line, per recipe type: (required, optional).
BATCH_INPUT_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "USER_PERSONALIZATION": (frozenset({"userId"}), frozenset({"filterValues"})),
    "PERSONALIZED_RANKING": (frozenset({"userId", "itemList"}), frozenset({"filterValues"})),
    "RELATED_ITEMS": (frozenset({"itemId"}), frozenset({"filterValues", "userId"})),
}

# The runtime call that serves each recipe type (named in the error for the wrong call).
RUNTIME_CALL = {
    "USER_PERSONALIZATION": "GetRecommendations",
    "RELATED_ITEMS": "GetRecommendations",
    "PERSONALIZED_RANKING": "GetPersonalizedRanking",
    "PERSONALIZED_ACTIONS": "GetActionRecommendations",
    "USER_SEGMENTATION": "CreateBatchSegmentJob",
}


@dataclass(frozen=True)
class Capabilities:
    """What one recipe can do. Defaults describe the plainest recipe of a type.

    ``minimum_data`` is the rule training checks first (it raises ``TooLittleData`` with the
    user-facing reason); ``metric_protocol`` is one of :data:`METRIC_PROTOCOLS`.
    """

    recipe_type: str
    minimum_data: Callable[[Any], None]  # takes the TrainingData (recipes/checks.py)
    metric_protocol: str
    scored: bool = False  # outputs carry a score per item (runtime and batch)
    reasons: bool = False  # GetRecommendations / GetPersonalizedRanking entries carry ``reason``
    exploration: bool = False  # itemExplorationConfig applies: new items are explored
    ranking_influence: bool = False  # campaignConfig.rankingInfluence (POPULARITY, FRESHNESS)
    metadata_by_default: bool = False  # metadataColumns work without enableMetadataWithRecommendations
    user_optional: bool = False  # GetRecommendations answers without a userId (the same list for all)
    batch_inference: bool = False  # CreateBatchInferenceJob accepts its versions
    theme_generation: bool = False  # batch inference in THEME_GENERATION mode
    segment_queries_per_file: int | None = None  # batch segment jobs: queries a file may hold; None: none
    attribute_queries: bool = False  # segment queries are item attributes, not item ids
    training_update: bool = False  # CreateSolutionVersion with trainingMode UPDATE
    incremental_update: bool = False  # CreateSolution with performIncrementalUpdate
    refresh: str | None = None  # FOLD_IN or REFIT: how a served model takes in new items; None: not at all

    def __post_init__(self) -> None:
        if self.metric_protocol not in METRIC_PROTOCOLS:
            raise ValueError(f"unknown metric protocol {self.metric_protocol!r}")
        if self.refresh not in (None, FOLD_IN, REFIT):
            raise ValueError(f"unknown refresh mode {self.refresh!r}")
        if self.batch_inference and self.recipe_type not in BATCH_INPUT_FIELDS:
            raise ValueError(f"{self.recipe_type} has no batch inference input format")

    @property
    def needs_user(self) -> bool:
        """GetRecommendations needs ``userId`` (recommending for users, not item-to-item)."""
        return self.recipe_type == "USER_PERSONALIZATION" and not self.user_optional

    @property
    def needs_item(self) -> bool:
        """GetRecommendations and batch lines need ``itemId``."""
        return self.recipe_type == "RELATED_ITEMS"

    @property
    def serves_campaigns(self) -> bool:
        """Campaigns serve it (segment models answer batch segment jobs only)."""
        return self.recipe_type != "USER_SEGMENTATION"

    @property
    def runtime_call(self) -> str:
        return RUNTIME_CALL[self.recipe_type]

    @property
    def batch_input_fields(self) -> tuple[frozenset[str], frozenset[str]]:
        """(required, optional) fields of a batch inference input line."""
        return BATCH_INPUT_FIELDS[self.recipe_type]

    def but(self, **changes) -> Capabilities:
        """The same capabilities with some changed (a legacy recipe's API rules, say)."""
        return replace(self, **changes)
