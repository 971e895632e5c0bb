"""Next-Best-Action: GetActionRecommendations on a model trained from Actions and Action_Interactions."""

import csv

import numpy as np
import pytest

from openpersonalize import synthetic
from tests.batch.conftest import import_datasets, train_versions, wait
from tests.conftest import make_client

ACTIONS_SCHEMA = {"type": "record", "name": "Actions", "fields": [
    {"name": "ACTION_ID", "type": "string"}, {"name": "VALUE", "type": ["null", "long"]},
    {"name": "KIND", "type": "string", "categorical": True}, {"name": "REPEAT_FREQUENCY", "type": ["null", "long"]}]}
ACTION_INTERACTIONS_SCHEMA = {"type": "record", "name": "ActionInteractions", "fields": [
    {"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
    {"name": "EVENT_TYPE", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}]}


@pytest.fixture(scope="module")
def nba(server, personalize):
    cat = synthetic.generate(n_users=300, n_items=100, interactions_per_user=12, seed=9)
    folder = server.data_dir / "s3" / "nba" / "data"
    synthetic.write_csvs(cat, folder)
    rng = np.random.default_rng(1)
    with open(folder / "actions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ACTION_ID", "VALUE", "KIND", "REPEAT_FREQUENCY"])
        # Whoever rated a movie is not asked again (for a very long time).
        w.writerows([["join-club", 10, "membership", ""], ["buy-popcorn", 2, "upsell", ""],
                     ["rate-movie", 1, "engagement", 100000]])
    with open(folder / "action_interactions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ACTION_ID", "EVENT_TYPE", "TIMESTAMP"])
        for u, genres in zip(cat.user_ids, cat.user_genres):
            for action in ("join-club", "buy-popcorn", "rate-movie"):
                # Comedy fans take "join-club"; nobody much takes "rate-movie".
                p = {"join-club": 0.85 if "Comedy" in genres else 0.1, "buy-popcorn": 0.5, "rate-movie": 0.2}[action]
                w.writerow([u, action, "Taken" if rng.random() < p else "Not taken",
                            synthetic.START + int(rng.integers(0, 86400 * 20))])
    group = personalize.create_dataset_group(name="nba")["datasetGroupArn"]
    import_datasets(personalize, group, "nba", "s3://nba/data", [
        ("Interactions", synthetic.INTERACTIONS_SCHEMA, "interactions.csv"), ("Actions", ACTIONS_SCHEMA, "actions.csv"),
        ("Action_Interactions", ACTION_INTERACTIONS_SCHEMA, "action_interactions.csv")])
    version = train_versions(personalize, group, "nba", ["aws-next-best-action"])["aws-next-best-action"]
    campaign = personalize.create_campaign(name="nba", solutionVersionArn=version)["campaignArn"]
    return cat, campaign


def test_action_recommendations(server, nba):
    cat, campaign = nba
    rt = make_client("personalize-runtime", server.endpoint)
    fans = [str(u) for u, g in zip(cat.user_ids, cat.user_genres) if "Comedy" in g][:10]
    others = [str(u) for u, g in zip(cat.user_ids, cat.user_genres) if "Comedy" not in g][:10]
    out = rt.get_action_recommendations(campaignArn=campaign, userId=fans[0], numResults=3)
    assert out["recommendationId"] and len(out["actionList"]) == 3
    assert all(0.0 <= a["score"] <= 1.0 for a in out["actionList"])
    club = lambda u: next(a["score"] for a in rt.get_action_recommendations(  # noqa: E731
        campaignArn=campaign, userId=u)["actionList"] if a["actionId"] == "join-club")
    assert np.mean([club(u) for u in fans]) > np.mean([club(u) for u in others])
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaign, userId=fans[0])


def test_action_filters(server, personalize, nba):
    """ActionID filters: on the Actions dataset's columns and on the user's own action history."""
    cat, campaign = nba
    rt = make_client("personalize-runtime", server.endpoint)
    version = personalize.describe_campaign(campaignArn=campaign)["campaign"]["solutionVersionArn"]
    group = personalize.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["datasetGroupArn"]
    filters = {}
    for name, expression in (("no-upsell", 'EXCLUDE ActionID WHERE Actions.KIND IN ("upsell")'),
                             ("not-taken", 'EXCLUDE ActionID WHERE Action_Interactions.EVENT_TYPE IN ("Taken")'),
                             ("kind", "INCLUDE ActionID WHERE Actions.KIND IN ($KIND)")):
        filters[name] = personalize.create_filter(name=f"nba-{name}", datasetGroupArn=group,
                                                  filterExpression=expression)["filterArn"]
        assert wait(lambda: personalize.describe_filter(filterArn=filters[name])["filter"])["status"] == "ACTIVE"

    def actions(user, name, values=None):
        kw = {"filterValues": values} if values else {}
        return {a["actionId"] for a in rt.get_action_recommendations(
            campaignArn=campaign, userId=user, numResults=3, filterArn=filters[name], **kw)["actionList"]}

    taken: dict[str, set] = {}
    with open(server.data_dir / "s3" / "nba" / "data" / "action_interactions.csv") as f:
        for row in list(csv.reader(f))[1:]:
            if row[2] == "Taken":
                taken.setdefault(row[0], set()).add(row[1])
    users = [str(u) for u in cat.user_ids[:30]]
    assert all("buy-popcorn" not in actions(u, "no-upsell") for u in users)
    assert all(actions(u, "kind", {"KIND": '"membership"'}) <= {"join-club"} for u in users)
    some_taken = [u for u in users if taken.get(u)]
    assert some_taken
    for u in some_taken:
        assert not actions(u, "not-taken") & taken[u], u
    # Without the filter, users are offered actions they took: the filter does remove something.
    assert any({a["actionId"] for a in rt.get_action_recommendations(
        campaignArn=campaign, userId=u, numResults=3)["actionList"]} & taken[u] for u in some_taken)


def test_actions_taken_within_their_repeat_frequency_are_not_offered(server, nba):
    cat, campaign = nba
    rt = make_client("personalize-runtime", server.endpoint)
    taken: dict[str, set] = {}
    with open(server.data_dir / "s3" / "nba" / "data" / "action_interactions.csv") as f:
        for row in list(csv.reader(f))[1:]:
            if row[2] == "Taken":
                taken.setdefault(row[0], set()).add(row[1])
    raters = [str(u) for u in cat.user_ids if "rate-movie" in taken.get(str(u), set())][:10]
    others = [str(u) for u in cat.user_ids if "rate-movie" not in taken.get(str(u), set())][:10]
    assert raters and others

    def offered(user):
        return {a["actionId"] for a in rt.get_action_recommendations(campaignArn=campaign, userId=user,
                                                                     numResults=3)["actionList"]}

    assert all("rate-movie" not in offered(u) for u in raters)
    assert all("rate-movie" in offered(u) for u in others)  # three actions asked for: all of theirs
