"""The minimum-data rules a recipe declares (datasets-and-import.md §7), as TooLittleData reasons."""

from __future__ import annotations

import numpy as np

from .base import TooLittleData, TrainingData

MIN_ACTIVE_SHARE = 0.01

FEWER_INTERACTIONS = "Create failed. Dataset has fewer than {} interactions."
FEWER_ACTIVE_USERS = "Create failed. Dataset has fewer than {} users with at least 2 interactions each."
FEWER_ACTIVE_SHARE = "Create failed. Fewer than 1 percent of users have at least 2 interactions."
NO_ACTIONS = "Create failed. Next-Best-Action needs an Actions dataset."
NO_ITEM_TEXT = ("Create failed. Semantic-Similarity needs an Items dataset with an itemName field "
                "and a textual field.")


def enough_interactions(data: TrainingData) -> None:
    """The rule of every interaction-trained recipe: raise TooLittleData with the spec's reason
    when ``data`` (already filtered by event type, value threshold and eventsConfig) is too small."""
    least = data.minimums
    if data.n_interactions < least.interactions:
        raise TooLittleData(FEWER_INTERACTIONS.format(least.interactions))
    per_user = np.bincount(data.user, minlength=data.n_users)
    users = int((per_user > 0).sum())
    active = int((per_user >= 2).sum())
    if active < least.active_users:
        raise TooLittleData(FEWER_ACTIVE_USERS.format(least.active_users))
    if active < MIN_ACTIVE_SHARE * users:
        raise TooLittleData(FEWER_ACTIVE_SHARE)


def enough_item_text(data: TrainingData) -> None:
    """Semantic-Similarity trains on item text alone: an Items dataset with a name and a text."""
    roles = data.item_columns
    if data.items is None or not roles.item_name or not roles.textual:
        raise TooLittleData(NO_ITEM_TEXT)


def enough_actions(data: TrainingData) -> None:
    """Next-Best-Action needs an Actions dataset besides enough interactions."""
    if data.actions is None:
        raise TooLittleData(NO_ACTIONS)
    enough_interactions(data)
