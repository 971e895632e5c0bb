"""The static catalogue: recipes, their algorithms, feature transformations and hyperparameters.

This is the data behind ListRecipes, DescribeRecipe, DescribeAlgorithm and
DescribeFeatureTransformation, and the rules CreateSolution checks hyperparameters against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Fixed dates: the catalogue does not change while a server runs (2019-06-10T00:00:00Z).
CATALOGUE_TIME = 1560124800.0
RECIPE_PREFIX = "arn:aws:personalize:::recipe/"
ALGORITHM_PREFIX = "arn:aws:personalize:::algorithm/"
TRANSFORMATION_PREFIX = "arn:aws:personalize:::feature-transformation/"


@dataclass(frozen=True)
class Param:
    """One hyperparameter: ``kind`` is int, float or categorical; ``where`` is algorithm or feature."""

    name: str
    default: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    tunable: bool = False
    where: str = "algorithm"

    def check(self, value: str) -> str | None:
        """None if ``value`` is acceptable, else the rule it breaks."""
        if self.kind == "categorical":
            return None if value in self.values else f"must be one of {', '.join(self.values)}"
        try:
            number = int(value) if self.kind == "int" else float(value)
        except ValueError:
            return f"must be {'an integer' if self.kind == 'int' else 'a number'}"
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            return f"must be between {_fmt(self.low)} and {_fmt(self.high)}"
        return None


def _fmt(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


@dataclass(frozen=True)
class Recipe:
    name: str
    recipe_type: str
    algorithm: str
    transformation: str | None
    description: str
    domain: str | None = None
    params: tuple[Param, ...] = field(default=())

    @property
    def arn(self) -> str:
        return RECIPE_PREFIX + self.name

    def param(self, name: str, where: str = "algorithm") -> Param | None:
        return next((p for p in self.params if p.name == name and p.where == where), None)


_HISTORY = (
    Param("min_user_history_length_percentile", "0.0", "float", 0, 1, where="feature"),
    Param("max_user_history_length_percentile", "0.99", "float", 0, 1, where="feature"),
)
_SEQUENCE = (
    Param("hidden_dimension", "149", "int", 32, 256, tunable=True),
    Param("bptt", "32", "int", 2, 32, tunable=True),
    Param("recency_mask", "true", "categorical", values=("true", "false"), tunable=True),
)
_HRNN = (Param("hidden_dimension", "43", "int", 32, 256, tunable=True),) + _SEQUENCE[1:]
_TREND = ("30 minutes", "1 hour", "2 hours", "3 hours", "1 day")

RECIPES: tuple[Recipe, ...] = (
    Recipe("aws-user-personalization-v2", "USER_PERSONALIZATION", "aws-user-personalization-v2", None,
           "Recommends items for a user from their history; scales to millions of items.",
           params=(Param("apply_recency_bias", "true", "categorical", values=("true", "false")),)),
    Recipe("aws-user-personalization", "USER_PERSONALIZATION", "aws-user-personalization", None,
           "Recommends items for a user, with exploration of new items.", params=_SEQUENCE + _HISTORY),
    Recipe("aws-hrnn", "USER_PERSONALIZATION", "aws-hrnn", "JSON-percentile-filtering",
           "Legacy: user personalization from interaction history.", params=_HRNN + _HISTORY),
    Recipe("aws-hrnn-metadata", "USER_PERSONALIZATION", "aws-hrnn-metadata", "featurize_metadata",
           "Legacy: user personalization with item and user metadata.", params=_HRNN + _HISTORY),
    Recipe("aws-hrnn-coldstart", "USER_PERSONALIZATION", "aws-hrnn-coldstart", "featurize_coldstart",
           "Legacy: user personalization that favours new items.",
           params=_SEQUENCE + _HISTORY + (
               Param("cold_start_max_interactions", "15", "int", 1, None, where="feature"),
               Param("cold_start_max_duration", "5.0", "float", 0.0, None, where="feature"),
               Param("cold_start_relative_from", "latestItem", "categorical",
                     values=("currentTime", "latestItem"), where="feature"))),
    Recipe("aws-popularity-count", "USER_PERSONALIZATION", "aws-popularity-count", "sims",
           "Recommends the items with the most distinct users."),
    Recipe("aws-trending-now", "USER_PERSONALIZATION", "aws-trending-now-custom", None,
           "Recommends the items whose interactions grow fastest.",
           params=(Param("trend_discovery_frequency", "2 hours", "categorical", values=_TREND,
                         where="feature"),)),
    Recipe("aws-personalized-ranking-v2", "PERSONALIZED_RANKING", "aws-personalized-ranking-v2", None,
           "Ranks a given list of items for a user; scales to millions of items.",
           params=(Param("apply_recency_bias", "true", "categorical", values=("true", "false")),)),
    Recipe("aws-personalized-ranking", "PERSONALIZED_RANKING", "aws-personalized-ranking",
           "JSON-percentile-filtering", "Ranks a given list of items for a user.",
           params=_SEQUENCE + _HISTORY),
    Recipe("aws-similar-items", "RELATED_ITEMS", "aws-similar-items", None,
           "Items similar to an item, from co-interactions and item metadata.",
           params=(Param("item_id_hidden_dim", "100", "int", 30, 200, tunable=True),
                   Param("item_metadata_hidden_dim", "100", "int", 30, 200, tunable=True))),
    Recipe("aws-sims", "RELATED_ITEMS", "aws-sims", "sims", "Items often interacted with together.",
           params=(Param("popularity_discount_factor", "0.5", "float", 0, 1, tunable=True),
                   Param("min_cointeraction_count", "3", "int", 0, 10, tunable=True),
                   Param("min_user_history_length_percentile", "0.005", "float", 0, 1, where="feature"),
                   Param("max_user_history_length_percentile", "0.995", "float", 0, 1, where="feature"),
                   Param("min_item_interaction_count_percentile", "0.01", "float", 0, 1, where="feature"),
                   Param("max_item_interaction_count_percentile", "0.9", "float", 0, 1, where="feature"))),
    Recipe("aws-semantic-similarity", "RELATED_ITEMS", "aws-semantic-similarity", "aws-semantic-similarity",
           "Items similar in meaning to an item, from their text."),
    Recipe("aws-next-best-action", "PERSONALIZED_ACTIONS", "aws-next-best-action", None,
           "The actions a user is most likely to take.",
           params=(Param("action_optimization_period", "14", "int", 7, 28, where="feature"),)),
    Recipe("aws-item-affinity", "USER_SEGMENTATION", "aws-item-affinity", "item-affinity",
           "Users most likely to interact with an item.",
           params=(Param("hidden_dimension", "149", "int", 32, 256, tunable=True),)),
    Recipe("aws-item-attribute-affinity", "USER_SEGMENTATION", "aws-item-attribute-affinity",
           "item-attribute-affinity", "Users most likely to interact with items having attributes.",
           params=(Param("hidden_dimension", "149", "int", 32, 256, tunable=True),)),
    # Domain use cases (CreateRecommender only).
    Recipe("aws-ecomm-customers-who-viewed-x-also-viewed", "RELATED_ITEMS",
           "aws-ecomm-customers-who-viewed-x-also-viewed", None, "Customers who viewed X also viewed",
           domain="ECOMMERCE"),
    Recipe("aws-ecomm-frequently-bought-together", "RELATED_ITEMS", "aws-ecomm-frequently-bought-together",
           None, "Frequently bought together", domain="ECOMMERCE"),
    Recipe("aws-ecomm-popular-items-by-purchases", "USER_PERSONALIZATION",
           "aws-ecomm-popular-items-by-purchases", None, "Best sellers", domain="ECOMMERCE"),
    Recipe("aws-ecomm-popular-items-by-views", "USER_PERSONALIZATION", "aws-ecomm-popular-items-by-views",
           None, "Most viewed", domain="ECOMMERCE"),
    Recipe("aws-ecomm-recommended-for-you", "USER_PERSONALIZATION", "aws-ecomm-recommended-for-you", None,
           "Recommended for you", domain="ECOMMERCE"),
    Recipe("aws-vod-because-you-watched-x", "RELATED_ITEMS", "aws-vod-because-you-watched-x", None,
           "Because you watched X", domain="VIDEO_ON_DEMAND"),
    Recipe("aws-vod-more-like-x", "RELATED_ITEMS", "aws-vod-more-like-x", None, "More like X",
           domain="VIDEO_ON_DEMAND"),
    Recipe("aws-vod-most-popular", "USER_PERSONALIZATION", "aws-vod-most-popular", None, "Most popular",
           domain="VIDEO_ON_DEMAND"),
    Recipe("aws-vod-trending-now", "USER_PERSONALIZATION", "aws-vod-trending-now", None, "Trending now",
           domain="VIDEO_ON_DEMAND"),
    Recipe("aws-vod-top-picks", "USER_PERSONALIZATION", "aws-vod-top-picks", None, "Top picks for you",
           domain="VIDEO_ON_DEMAND"),
)

RECIPES_BY_ARN = {r.arn: r for r in RECIPES}
ALGORITHMS = {ALGORITHM_PREFIX + r.algorithm: r for r in RECIPES}
TRANSFORMATIONS = {TRANSFORMATION_PREFIX + r.transformation: r for r in RECIPES if r.transformation}

def recipe_document(r: Recipe) -> dict:
    doc = {"name": r.name, "recipeArn": r.arn, "algorithmArn": ALGORITHM_PREFIX + r.algorithm,
           "status": "ACTIVE", "description": r.description, "recipeType": r.recipe_type,
           "creationDateTime": CATALOGUE_TIME, "lastUpdatedDateTime": CATALOGUE_TIME}
    if r.transformation:
        doc["featureTransformationArn"] = TRANSFORMATION_PREFIX + r.transformation
    if r.domain:
        doc["domain"] = r.domain
    return doc


def algorithm_document(r: Recipe) -> dict:
    algo = [p for p in r.params if p.where == "algorithm"]
    ranges = {"integerHyperParameterRanges": [], "continuousHyperParameterRanges": [],
              "categoricalHyperParameterRanges": []}
    for p in algo:
        if p.kind == "int":
            ranges["integerHyperParameterRanges"].append(
                {"name": p.name, "minValue": int(p.low), "maxValue": int(p.high if p.high is not None else 2**31 - 1),
                 "isTunable": p.tunable})
        elif p.kind == "float":
            ranges["continuousHyperParameterRanges"].append(
                {"name": p.name, "minValue": p.low, "maxValue": p.high, "isTunable": p.tunable})
        else:
            ranges["categoricalHyperParameterRanges"].append(
                {"name": p.name, "values": list(p.values), "isTunable": p.tunable})
    return {
        "name": r.algorithm, "algorithmArn": ALGORITHM_PREFIX + r.algorithm,
        "algorithmImage": {"name": f"openpersonalize/{r.algorithm}"},
        "defaultHyperParameters": {p.name: p.default for p in algo},
        "defaultHyperParameterRanges": ranges,
        "defaultResourceConfig": {"maxNumberOfTrainingJobs": "20", "maxParallelTrainingJobs": "1"},
        "trainingInputMode": "File",
        "creationDateTime": CATALOGUE_TIME, "lastUpdatedDateTime": CATALOGUE_TIME,
    }


def transformation_document(arn: str, r: Recipe) -> dict:
    feature = [p for p in r.params if p.where == "feature"]
    return {"name": arn.rsplit("/", 1)[1], "featureTransformationArn": arn,
            "defaultParameters": {p.name: p.default for p in feature}, "status": "ACTIVE",
            "creationDateTime": CATALOGUE_TIME, "lastUpdatedDateTime": CATALOGUE_TIME}
