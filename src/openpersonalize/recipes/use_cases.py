"""Domain use cases (CreateRecommender): each is a custom recipe trained on one event type.

The table follows recipes-and-metrics.md §1: the recipe a use case trains, the event type it
trains on (None: all), the event types whose items it never recommends back to the user (items
already purchased or watched), and whether it needs an Items dataset.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UseCase:
    recipe: str
    event_type: str | None
    excluded_event_types: tuple[str, ...] = ()
    needs_items: bool = False


USE_CASES: dict[str, UseCase] = {
    "aws-ecomm-customers-who-viewed-x-also-viewed": UseCase("aws-sims", "View", ("Purchase",)),
    "aws-ecomm-frequently-bought-together": UseCase("aws-sims", "Purchase"),
    "aws-ecomm-popular-items-by-purchases": UseCase("aws-popularity-count", "Purchase"),
    "aws-ecomm-popular-items-by-views": UseCase("aws-popularity-count", "View"),
    "aws-ecomm-recommended-for-you": UseCase("aws-user-personalization", None, ("Purchase",)),
    "aws-vod-because-you-watched-x": UseCase("aws-sims", "Watch", ("Watch",)),
    "aws-vod-more-like-x": UseCase("aws-similar-items", None, ("Watch",), needs_items=True),
    "aws-vod-most-popular": UseCase("aws-popularity-count", "Watch"),
    "aws-vod-trending-now": UseCase("aws-trending-now", None),
    "aws-vod-top-picks": UseCase("aws-user-personalization", None, ("Watch",)),
}
