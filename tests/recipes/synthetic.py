"""Generated data whose right answers are known.

Three taste groups (A, B, C). Each group has WARM items (with interactions) and COLD items
(metadata only). A user of group g interacts with items of g 90 % of the time; within a group
item popularity falls off steeply, so the most popular items are known. In the newest two hours
one item of group C (the burst item) suddenly gets many interactions: it is what trends. Item
metadata: a categorical GENRE (the group) and a DESCRIPTION drawn from the group's vocabulary.
Actions: users of A take action ``act-A`` and decline ``act-B``; users of B the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from openpersonalize.recipes.base import ColumnRoles, TrainingData

GROUPS = ("A", "B", "C")
WARM, COLD, USERS = 25, 5, 40
PER_USER = 16
T0 = 1_700_000_000
VOCAB = {
    "A": "space rocket galaxy astronaut orbit planet nebula launch",
    "B": "cooking recipe kitchen chef oven flavour spice bake",
    "C": "football match goal stadium league striker referee score",
}
NAMES = {"A": "Star voyage", "B": "Kitchen stories", "C": "Match day"}


@dataclass
class World:
    data: TrainingData
    item_group: dict[str, str]
    user_group: dict[str, str]
    burst_item: str
    cold_items: list[str]

    def items_of(self, group: str) -> set[int]:
        return {i for i, x in enumerate(self.data.item_ids) if self.item_group[x] == group}

    def users_of(self, group: str) -> set[int]:
        return {u for u, x in enumerate(self.data.user_ids) if self.user_group.get(x) == group}

    def item(self, item_id: str) -> int:
        return int(np.searchsorted(self.data.item_ids, item_id))

    def user(self, user_id: str) -> int:
        return int(np.searchsorted(self.data.user_ids, user_id))


def make_world(seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    order_rng = np.random.default_rng(seed + 1)  # the order of each user's items, drawn apart from the rest
    item_group, user_group = {}, {}
    warm = {g: [f"{g}-{k:02d}" for k in range(WARM)] for g in GROUPS}
    cold = {g: [f"{g}-cold-{k}" for k in range(COLD)] for g in GROUPS}
    for g in GROUPS:
        for i in warm[g] + cold[g]:
            item_group[i] = g
    weights = 1.0 / np.arange(1, WARM + 1) ** 1.2
    weights /= weights.sum()
    users, items, times, events, values = [], [], [], [], []
    t = T0
    for g in GROUPS:
        for k in range(USERS):
            u = f"u-{g}-{k:02d}"
            user_group[u] = g
            chosen = set()
            while len(chosen) < PER_USER:
                if rng.random() < 0.9:
                    chosen.add(warm[g][rng.choice(WARM, p=weights)])
                else:
                    other = GROUPS[rng.integers(3)]
                    chosen.add(warm[other][rng.integers(WARM)])
            for i in order_rng.permutation(sorted(chosen)):  # seeded (a set's order follows string hashing)
                t += int(rng.integers(60, 600))
                users.append(u)
                items.append(i)
                times.append(t)
                kind = "click" if rng.random() < 0.3 else "watch"
                events.append(kind)
                values.append(float(rng.integers(1, 6)))
    # The burst: the least popular warm C item, hit by 40 users in the newest two hours.
    burst = warm["C"][-1]
    t_end = t + 4 * 3600
    for k in range(40):
        users.append(f"u-C-{k:02d}")
        items.append(burst)
        times.append(t_end - int(rng.integers(0, 7000)))
        events.append("watch")
        values.append(3.0)
    all_items = [i for g in GROUPS for i in warm[g] + cold[g]]
    words = {g: VOCAB[g].split() for g in GROUPS}
    descriptions = [" ".join(rng.choice(words[item_group[i]], size=6)) for i in all_items]
    names = [f"{NAMES[item_group[i]]} {n}" for n, i in enumerate(all_items)]
    created = [T0 - 86400 * 365 if "cold" not in i else t_end - 86400 for i in all_items]
    items_table = pa.table({"ITEM_ID": all_items, "GENRE": [item_group[i] for i in all_items],
                            "DESCRIPTION": descriptions, "TITLE": names, "CREATION_TIMESTAMP": created})
    roles = ColumnRoles(categorical=("GENRE",), textual=("DESCRIPTION",), item_name="TITLE")
    actions = pa.table({"ACTION_ID": ["act-A", "act-B", "act-C"], "VALUE": [5, 3, 100],
                        "CATEGORY": ["x", "y", "z"]})
    ai_users, ai_actions, ai_events, ai_times = [], [], [], []
    for rnd in range(2):  # two rounds, so each action passes the 50 TAKEN / 50 other minimum
        for g, mine, other in (("A", "act-A", "act-B"), ("B", "act-B", "act-A")):
            for k in range(USERS):
                u = f"u-{g}-{k:02d}"
                for a, taken in ((mine, rng.random() < 0.9), (other, rng.random() < 0.1)):
                    ai_users += [u, u]
                    ai_actions += [a, a]
                    ai_events += ["Viewed", "Taken" if taken else "Not taken"]
                    ai_times += [t - 9000 + 4000 * rnd + k, t - 8000 + 4000 * rnd + k]
    action_interactions = pa.table({"USER_ID": ai_users, "ACTION_ID": ai_actions,
                                    "EVENT_TYPE": ai_events, "TIMESTAMP": ai_times})
    data = TrainingData.from_records(users, items, times, events, values, items_table=items_table,
                                     item_columns=roles, actions=actions,
                                     action_interactions=action_interactions)
    return World(data, item_group, user_group, burst, [i for g in GROUPS for i in cold[g]])
