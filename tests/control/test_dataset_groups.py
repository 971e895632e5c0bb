"""Dataset groups through boto3."""

import pytest


def test_create_describe_list_delete(personalize, unique):
    name = unique("dg")
    arn = personalize.create_dataset_group(name=name, domain="ECOMMERCE",
                                           tags=[{"tagKey": "team", "tagValue": "recs"}])["datasetGroupArn"]
    assert arn == f"arn:aws:personalize:us-east-1:000000000000:dataset-group/{name}"
    group = personalize.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"]
    assert group["status"] == "ACTIVE" and group["domain"] == "ECOMMERCE" and group["name"] == name
    assert group["creationDateTime"].tzinfo is not None
    listed = [g["datasetGroupArn"] for page in personalize.get_paginator("list_dataset_groups").paginate()
              for g in page["datasetGroups"]]
    assert arn in listed
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == [{"tagKey": "team", "tagValue": "recs"}]
    personalize.delete_dataset_group(datasetGroupArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException) as e:
        personalize.describe_dataset_group(datasetGroupArn=arn)
    assert arn in e.value.response["Error"]["Message"]


def test_duplicate_name(personalize, unique):
    name = unique("dg")
    personalize.create_dataset_group(name=name)
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException) as e:
        personalize.create_dataset_group(name=name)
    assert name in e.value.response["Error"]["Message"]


@pytest.mark.parametrize("kwargs, member, rule", [
    ({"name": "has space"}, "name", "regular expression pattern"),
    ({"name": "x" * 64}, "name", "length less than or equal to 63"),
    ({"name": "ok", "domain": "FOO"}, "domain", "enum value set"),
])
def test_bad_input_names_member_value_rule(personalize, kwargs, member, rule):
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_dataset_group(**kwargs)
    message = e.value.response["Error"]["Message"]
    assert f"at '{member}'" in message and rule in message and str(kwargs[member])[:20] in message
