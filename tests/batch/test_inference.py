"""Batch inference jobs through boto3, on a model trained on generated data with known tastes."""


import numpy as np
import pytest

from tests.batch.conftest import ROLE

NEEDS = ("aws-user-personalization", "aws-similar-items", "aws-personalized-ranking", "aws-popularity-count",
         "aws-item-affinity")


def genre_share(lab, user_index: int, items: list[str]) -> float:
    liked = set(lab.cat.user_genres[user_index])
    return float(np.mean([bool(set(lab.cat.genre_of(i)) & liked) for i in items]))


def test_user_personalization_lines_in_order_with_errors(lab):
    users = [str(u) for u in lab.cat.user_ids[:40]]
    lines = [{"userId": u} for u in users[:20]] + ["{broken", {"userId": users[20], "colour": "red"},
                                                   {"itemId": "x"}, "", {"userId": "never-seen"}]
    uri = lab.put("up/users.json", lines + [{"userId": u} for u in users[21:40]])
    job, out = lab.inference("aws-user-personalization", uri, numResults=10)
    assert job["status"] == "ACTIVE", job
    assert job["numResults"] == 10 and job["batchInferenceJobMode"] == "BATCH_INFERENCE"
    rows = lab.output(out + "users.json.out")
    assert len(rows) == 43  # one per non-blank line, blank lines skipped
    assert [r["input"].get("userId") for r in rows[:20]] == users[:20]
    assert rows[20]["error"].startswith("Line 21 is not valid JSON") and rows[20]["output"] is None
    assert "unknown field colour" in rows[21]["error"]
    assert "missing userId" in rows[22]["error"]
    cold = rows[23]
    assert cold["error"] is None and len(cold["output"]["recommendedItems"]) == 10
    assert [r["input"]["userId"] for r in rows[24:]] == users[21:40]
    good = [r for r in rows if r["error"] is None and r["input"]["userId"] in users]
    for r in good:
        items, scores = r["output"]["recommendedItems"], r["output"]["scores"]
        assert len(items) == 10 == len(scores) and len(set(items)) == 10
        assert scores == sorted(scores, reverse=True)
    # The model learned the generated tastes: most items are of the user's genres.
    shares = [genre_share(lab, int(r["input"]["userId"][1:]), r["output"]["recommendedItems"]) for r in good]
    assert np.mean(shares) > 0.7


def test_an_over_long_line_gets_its_error_and_the_job_goes_on(lab):
    """A 3 MB line (the limit, batch_max_line_bytes, is 1 MiB by default) is not read whole: it
    gets a per-line error naming its size, and the lines around it are scored."""
    users = [str(u) for u in lab.cat.user_ids[:6]]
    huge = '{"userId": "' + users[0] + '", "context": {"x": "' + "y" * 3_000_000 + '"}}'
    deep = '{"userId": "' + users[0] + '", "context": ' + "[" * 5_000 + "]" * 5_000 + "}"
    lines = [{"userId": u} for u in users[:3]] + [huge, deep] + [{"userId": u} for u in users[3:]]
    uri = lab.put("long/users.json", lines)
    job, out = lab.inference("aws-user-personalization", uri, numResults=5)
    assert job["status"] == "ACTIVE", job
    rows = lab.output(out + "users.json.out")
    assert len(rows) == 8
    assert rows[3]["output"] is None and rows[4]["output"] is None
    assert rows[3]["error"] == (f"Line 4 has {len(huge) + 1:,} bytes, more than the limit of 1,048,576 bytes "
                                "(batch_max_line_bytes); it was not read.")
    assert rows[4]["error"] == "Line 5 nests arrays or objects too deeply to be read."
    assert [r["input"]["userId"] for r in rows[:3] + rows[5:]] == users
    assert all(len(r["output"]["recommendedItems"]) == 5 for r in rows[:3] + rows[5:])


def test_filters_with_placeholders_and_history(lab):
    genre = lab.filter("INCLUDE ItemID WHERE Items.GENRES IN ($G) AND Items.PRICE <= $MAX")
    bought = lab.filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    users = [str(u) for u in lab.cat.user_ids[:30]]
    uri = lab.put("filters/users.json", [{"userId": u, "filterValues": {"G": '"Comedy","Drama"', "MAX": "30"}}
                                         for u in users] + [{"userId": users[0]},
                                                            {"userId": users[1], "filterValues": {"MAX": "ten"}}])
    job, out = lab.inference("aws-user-personalization", uri, numResults=5, filterArn=genre)
    assert job["status"] == "ACTIVE" and job["filterArn"] == genre
    rows = lab.output(out + "users.json.out")
    for r in rows[:30]:
        for item in r["output"]["recommendedItems"]:
            k = int(np.searchsorted(lab.cat.item_ids, item))
            assert set(lab.cat.item_genres[k]) & {"Comedy", "Drama"} and lab.cat.item_prices[k] <= 30
        assert len(r["output"]["recommendedItems"]) == 5
    assert "$G" in rows[30]["error"]
    assert rows[31]["error"] and "MAX" in rows[31]["error"]

    uri = lab.put("filters/plain.json", [{"userId": u} for u in users])
    job, out = lab.inference("aws-user-personalization", uri, numResults=25, filterArn=bought)
    purchased = {(str(lab.cat.user_ids[u]), str(lab.cat.item_ids[i]))
                 for u, i, e in zip(lab.cat.users, lab.cat.items, lab.cat.event_types) if e == "purchase"}
    for r in lab.output(out + "plain.json.out"):
        assert not {(r["input"]["userId"], i) for i in r["output"]["recommendedItems"]} & purchased


def test_ranking_related_and_popularity(lab):
    u = str(lab.cat.user_ids[3])
    uri = lab.put("rank/in.json", [{"userId": u, "itemList": ["i0005", "i0001", "unknown-item", "i0009", "i0001"]},
                                   {"userId": u, "itemList": []}])
    job, out = lab.inference("aws-personalized-ranking", uri)
    rows = lab.output(out + "in.json.out")
    ranked = rows[0]["output"]
    assert sorted(ranked["recommendedItems"]) == sorted(["i0005", "i0001", "unknown-item", "i0009"])
    assert ranked["recommendedItems"][-1] == "unknown-item" and ranked["scores"][-1] == 0.0
    assert ranked["scores"][:3] == sorted(ranked["scores"][:3], reverse=True)
    assert "itemList" in rows[1]["error"]

    item = "i0010"
    uri = lab.put("related/in.json", [{"itemId": item}, {"itemId": "not-an-item"}])
    job, out = lab.inference("aws-similar-items", uri, numResults=8)
    rows = lab.output(out + "in.json.out")
    similar = rows[0]["output"]["recommendedItems"]
    assert item not in similar and len(similar) == 8 and "scores" not in rows[0]["output"]
    same = np.mean([bool(set(lab.cat.genre_of(i)) & set(lab.cat.genre_of(item))) for i in similar])
    assert same > 0.6
    assert len(rows[1]["output"]["recommendedItems"]) == 8  # unknown item: popular items

    uri = lab.put("popular/in.json", [{"userId": "a"}, {"userId": "b"}])
    job, out = lab.inference("aws-popularity-count", uri, numResults=5)
    rows = lab.output(out + "in.json.out")
    assert rows[0]["output"] == rows[1]["output"] and "scores" not in rows[0]["output"]
    counts = {}
    for u, i in set(zip(lab.cat.users.tolist(), lab.cat.items.tolist())):
        counts[i] = counts.get(i, 0) + 1
    top = max(counts.values())
    assert counts[int(np.searchsorted(lab.cat.item_ids, rows[0]["output"]["recommendedItems"][0]))] == top


def test_prefix_input_keeps_one_output_per_file(lab):
    a = lab.put("multi/a.json", [{"userId": "u0001"}])
    lab.put("multi/sub/b.json", [{"userId": "u0002"}, {"userId": "u0003"}])
    job, out = lab.inference("aws-user-personalization", a.rsplit("/", 1)[0] + "/", numResults=3)
    assert job["status"] == "ACTIVE"
    assert len(lab.output(out + "a.json.out")) == 1 and len(lab.output(out + "sub/b.json.out")) == 2


def test_themes(lab):
    uri = lab.put("themes/in.json", [{"itemId": "i0010"}, {"itemId": "i0020"}])
    job, out = lab.inference("aws-similar-items", uri, numResults=6, batchInferenceJobMode="THEME_GENERATION",
                             themeGenerationConfig={"fieldsForThemeGeneration": {"itemName": "TITLE"}})
    assert job["status"] == "ACTIVE", job
    for row in lab.output(out + "in.json.out"):
        output = row["output"]
        assert output["theme"] and isinstance(output["theme"], str) and "scores" not in output
        scores = output["itemsThemeRelevanceScores"]
        assert len(scores) == len(output["recommendedItems"]) == 6
        assert scores == sorted(scores, reverse=True) and all(-0.1 <= s <= 0.6 for s in scores)


def test_job_level_failures(lab):
    c = lab.c
    job, _ = lab.inference("aws-user-personalization", "s3://batch/nothing-here/")
    assert job["status"] == "CREATE FAILED" and "empty" in job["failureReason"]
    with pytest.raises(c.exceptions.InvalidInputException) as e:
        c.create_batch_inference_job(jobName=lab.name("bad"), solutionVersionArn=lab.versions["aws-user-personalization"],
                                     roleArn=ROLE, jobInput={"s3DataSource": {"path": "s3://batch/in/"}},
                                     jobOutput={"s3DataDestination": {"path": "s3://batch/in/out/"}})
    assert "jobOutput.s3DataDestination.path" in e.value.response["Error"]["Message"]
    with pytest.raises(c.exceptions.InvalidInputException) as e:
        c.create_batch_inference_job(jobName=lab.name("bad"), solutionVersionArn=lab.versions["aws-item-affinity"],
                                     roleArn=ROLE, jobInput={"s3DataSource": {"path": "s3://batch/in/x.json"}},
                                     jobOutput={"s3DataDestination": {"path": "s3://batch/o/"}})
    assert "CreateBatchSegmentJob" in e.value.response["Error"]["Message"]
    with pytest.raises(c.exceptions.InvalidInputException) as e:
        c.create_batch_inference_job(jobName=lab.name("bad"), solutionVersionArn=lab.versions["aws-user-personalization"],
                                     roleArn=ROLE, jobInput={"s3DataSource": {"path": "s3://batch/in/x.json"}},
                                     jobOutput={"s3DataDestination": {"path": "s3://batch/o/"}},
                                     batchInferenceJobMode="THEME_GENERATION")
    assert "aws-similar-items" in e.value.response["Error"]["Message"]
    listed = c.list_batch_inference_jobs(solutionVersionArn=lab.versions["aws-user-personalization"])
    assert listed["batchInferenceJobs"] and all(
        j["solutionVersionArn"] == lab.versions["aws-user-personalization"] for j in listed["batchInferenceJobs"])


def test_item_exploration_config(lab):
    """explorationWeight gives fresh, little-seen items a share of the slots."""
    users = [{"userId": str(u)} for u in lab.cat.user_ids[:30]]
    uri = lab.put("explore/users.json", users)
    plain, plain_out = lab.inference("aws-user-personalization", uri, numResults=10)
    explore, explore_out = lab.inference(
        "aws-user-personalization", uri, numResults=10,
        batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": "0.5",
                                                           "explorationItemAgeCutOff": "10000"}})
    assert plain["status"] == explore["status"] == "ACTIVE", explore
    assert explore["batchInferenceJobConfig"]["itemExplorationConfig"]["explorationWeight"] == "0.5"
    a = lab.output(plain_out + "users.json.out")
    b = lab.output(explore_out + "users.json.out")
    assert all(len(r["output"]["recommendedItems"]) == 10 for r in b)
    changed = sum(x["output"]["recommendedItems"] != y["output"]["recommendedItems"] for x, y in zip(a, b))
    assert changed >= 20  # half the slots go to exploration for most users
