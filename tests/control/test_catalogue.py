"""The static catalogue: recipes, algorithms, feature transformations."""

import pytest


def test_list_recipes_pages_and_domains(personalize):
    pages = list(personalize.get_paginator("list_recipes").paginate(PaginationConfig={"PageSize": 4}))
    recipes = [r for p in pages for r in p["recipes"]]
    names = {r["name"] for r in recipes}
    assert len(pages) > 1 and len(recipes) == len(names)
    assert {"aws-user-personalization-v2", "aws-sims", "aws-item-affinity", "aws-vod-top-picks"} <= names
    vod = personalize.list_recipes(domain="VIDEO_ON_DEMAND")["recipes"]
    assert vod and all(r["domain"] == "VIDEO_ON_DEMAND" for r in vod)


def test_describe_recipe_algorithm_transformation(personalize):
    recipe = personalize.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-sims")["recipe"]
    assert recipe["recipeType"] == "RELATED_ITEMS" and recipe["status"] == "ACTIVE"
    algo = personalize.describe_algorithm(algorithmArn=recipe["algorithmArn"])["algorithm"]
    assert algo["defaultHyperParameters"]["popularity_discount_factor"] == "0.5"
    ranges = algo["defaultHyperParameterRanges"]["integerHyperParameterRanges"]
    assert {"name": "min_cointeraction_count", "minValue": 0, "maxValue": 10, "isTunable": True} in ranges
    ft = personalize.describe_feature_transformation(
        featureTransformationArn=recipe["featureTransformationArn"])["featureTransformation"]
    assert ft["status"] == "ACTIVE"
    seg = personalize.describe_recipe(recipeArn="arn:aws:personalize:::recipe/aws-item-affinity")["recipe"]
    assert seg["recipeType"] == "USER_SEGMENTATION"


@pytest.mark.parametrize("call, arg", [
    ("describe_recipe", {"recipeArn": "arn:aws:personalize:::recipe/aws-nope"}),
    ("describe_algorithm", {"algorithmArn": "arn:aws:personalize:::algorithm/aws-nope"}),
    ("describe_feature_transformation", {"featureTransformationArn": "arn:aws:personalize:::feature-transformation/x"}),
])
def test_unknown_catalogue_entries(personalize, call, arg):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        getattr(personalize, call)(**arg)
