"""Event trackers, metric attributions and tags."""

import pytest


def test_event_tracker(personalize, unique, group):
    name = unique("et")
    out = personalize.create_event_tracker(name=name, datasetGroupArn=group)
    assert len(out["trackingId"]) == 36 and len(out["eventTrackerArn"].rsplit("/", 1)[1]) == 8
    tracker = personalize.describe_event_tracker(eventTrackerArn=out["eventTrackerArn"])["eventTracker"]
    assert tracker["trackingId"] == out["trackingId"] and tracker["accountId"] == "000000000000"
    assert tracker["status"] == "ACTIVE" and tracker["datasetGroupArn"] == group
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_event_tracker(name=unique("et"), datasetGroupArn=group)
    listed = personalize.list_event_trackers(datasetGroupArn=group)["eventTrackers"]
    assert [t["eventTrackerArn"] for t in listed] == [out["eventTrackerArn"]]
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_dataset_group(datasetGroupArn=group)
    personalize.delete_event_tracker(eventTrackerArn=out["eventTrackerArn"])
    personalize.delete_dataset_group(datasetGroupArn=group)


def test_metric_attribution(personalize, unique, group):
    metrics = [{"eventType": "click", "metricName": "clicks", "expression": "SAMPLECOUNT()"}]
    output = {"s3DataDestination": {"path": "s3://bucket/metrics/"}, "roleArn": "arn:aws:iam::000000000000:role/r"}
    arn = personalize.create_metric_attribution(name=unique("ma"), datasetGroupArn=group, metrics=metrics,
                                                metricsOutputConfig=output)["metricAttributionArn"]
    ma = personalize.describe_metric_attribution(metricAttributionArn=arn)["metricAttribution"]
    assert ma["status"] == "ACTIVE" and ma["metricsOutputConfig"] == output
    assert personalize.list_metric_attribution_metrics(metricAttributionArn=arn)["metrics"] == metrics
    personalize.update_metric_attribution(metricAttributionArn=arn, removeMetrics=["clicks"], addMetrics=[
        {"eventType": "buy", "metricName": "revenue", "expression": "SUM(Items.PRICE)"}])
    names = [m["metricName"] for m in personalize.list_metric_attribution_metrics(metricAttributionArn=arn)["metrics"]]
    assert names == ["revenue"]
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_metric_attribution(name=unique("ma"), datasetGroupArn=group, metrics=metrics,
                                              metricsOutputConfig=output)
    assert [m["metricAttributionArn"] for m in
            personalize.list_metric_attributions(datasetGroupArn=group)["metricAttributions"]] == [arn]
    # Metric attributions go with their dataset group.
    personalize.delete_dataset_group(datasetGroupArn=group)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_metric_attribution(metricAttributionArn=arn)


def test_tags(personalize, unique):
    arn = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "a", "tagValue": "1"}, {"tagKey": "b", "tagValue": "2"}])
    personalize.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "b", "tagValue": "2"}]
    too_many = [{"tagKey": f"k{i}", "tagValue": "v"} for i in range(50)]
    with pytest.raises(personalize.exceptions.TooManyTagsException):
        personalize.tag_resource(resourceArn=arn, tags=too_many)
    with pytest.raises(personalize.exceptions.TooManyTagsException):
        personalize.create_dataset_group(name=unique("dg"), tags=too_many + [{"tagKey": "x", "tagValue": "y"}])
    with pytest.raises(personalize.exceptions.TooManyTagKeysException):
        personalize.untag_resource(resourceArn=arn, tagKeys=[f"k{i}" for i in range(51)])
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset-group/nope"
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.list_tags_for_resource(resourceArn=missing)
