"""Domain recommenders: created in a VIDEO_ON_DEMAND group, trained on its use case, serving."""

import csv
import json

import pytest

from openpersonalize import synthetic
from tests.batch.conftest import ROLE, import_generated, wait
from tests.conftest import make_client


@pytest.fixture(scope="module")
def vod(server, personalize, tmp_path_factory):
    cat = synthetic.generate(n_users=200, n_items=120, interactions_per_user=20, seed=5)
    bucket = server.data_dir / "s3" / "vod"
    paths = synthetic.write_csvs(cat, bucket / "data")
    rows = list(csv.reader(open(paths["interactions"])))
    with open(paths["interactions"], "w", newline="") as f:  # every event is a Watch
        w = csv.writer(f)
        w.writerow(rows[0])
        w.writerows([r[:3] + ["Watch"] + r[4:] for r in rows[1:]])
    group = personalize.create_dataset_group(name="vod-rec", domain="VIDEO_ON_DEMAND")["datasetGroupArn"]
    import_generated(personalize, group, "vod", "s3://vod/data", kinds=("Interactions", "Items"),
                     domain="VIDEO_ON_DEMAND")
    return cat, group


def test_top_picks_and_most_popular(server, personalize, vod):
    cat, group = vod
    rt = make_client("personalize-runtime", server.endpoint)
    arns = {}
    for use_case in ("aws-vod-top-picks", "aws-vod-most-popular", "aws-vod-because-you-watched-x"):
        arns[use_case] = personalize.create_recommender(name=f"r-{use_case[8:]}", datasetGroupArn=group,
                                                        recipeArn=f"arn:aws:personalize:::recipe/{use_case}")[
            "recommenderArn"]
    for arn in arns.values():
        rec = wait(lambda: personalize.describe_recommender(recommenderArn=arn)["recommender"])
        assert rec["status"] == "ACTIVE", rec
        assert "normalized_discounted_cumulative_gain_at_10" in rec["modelMetrics"]
    user = str(cat.user_ids[0])
    watched = {str(cat.item_ids[i]) for u, i in zip(cat.users, cat.items) if u == 0}
    picks = rt.get_recommendations(recommenderArn=arns["aws-vod-top-picks"], userId=user, numResults=10)["itemList"]
    assert len(picks) == 10 and all("score" not in p for p in picks)
    assert not {p["itemId"] for p in picks} & watched  # Top picks excludes what the user watched
    popular = rt.get_recommendations(recommenderArn=arns["aws-vod-most-popular"], userId=user, numResults=5)
    assert len(popular["itemList"]) == 5
    related = rt.get_recommendations(recommenderArn=arns["aws-vod-because-you-watched-x"], userId=user,
                                     itemId=str(cat.item_ids[3]), numResults=5)["itemList"]
    assert related and not {p["itemId"] for p in related} & watched
    personalize.stop_recommender(recommenderArn=arns["aws-vod-most-popular"])
    with pytest.raises(rt.exceptions.ResourceNotFoundException):
        rt.get_recommendations(recommenderArn=arns["aws-vod-most-popular"], userId=user)
    personalize.start_recommender(recommenderArn=arns["aws-vod-most-popular"])
    assert len(rt.get_recommendations(recommenderArn=arns["aws-vod-most-popular"], userId=user)["itemList"]) == 25


def test_too_few_events_of_the_use_case_type(server, personalize):
    cat = synthetic.generate(n_users=150, n_items=80, interactions_per_user=15, seed=6)  # click/purchase only
    synthetic.write_csvs(cat, server.data_dir / "s3" / "vod2" / "data")
    group = personalize.create_dataset_group(name="vod-clicks", domain="VIDEO_ON_DEMAND")["datasetGroupArn"]
    s = personalize.create_schema(name="vod2-int", schema=json.dumps(synthetic.INTERACTIONS_SCHEMA),
                                  domain="VIDEO_ON_DEMAND")
    ds = personalize.create_dataset(name="vod2-int", schemaArn=s["schemaArn"], datasetGroupArn=group,
                                    datasetType="Interactions")["datasetArn"]
    job = personalize.create_dataset_import_job(jobName="vod2-int", datasetArn=ds, roleArn=ROLE,
                                                dataSource={"dataLocation": "s3://vod2/data/interactions.csv"})
    wait(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job["datasetImportJobArn"])["datasetImportJob"])
    arn = personalize.create_recommender(name="r-popular-clicks", datasetGroupArn=group,
                                         recipeArn="arn:aws:personalize:::recipe/aws-vod-most-popular")["recommenderArn"]
    rec = wait(lambda: personalize.describe_recommender(recommenderArn=arn)["recommender"])
    assert rec["status"] == "CREATE FAILED"
    assert rec["failureReason"] == "Dataset has fewer than 1000 interactions after filtering by event type: Watch"
