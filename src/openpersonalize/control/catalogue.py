"""The static catalogue: ListRecipes, DescribeRecipe, DescribeAlgorithm, DescribeFeatureTransformation."""

from __future__ import annotations

from .. import __version__
from ..errors import InvalidNextTokenException, ResourceNotFoundException
from ..recipes.catalogue import (
    ALGORITHMS,
    RECIPES,
    RECIPES_BY_ARN,
    TRANSFORMATIONS,
    algorithm_document,
    recipe_document,
    transformation_document,
)
from .base import Context


class CatalogueOperations:
    def list_recipes(self, ctx: Context, p: dict) -> dict:
        provider = p.get("recipeProvider") or "SERVICE"
        recipes = [r for r in RECIPES if provider == "SERVICE"]
        if p.get("domain"):
            recipes = [r for r in recipes if r.domain == p["domain"]]
        token = p.get("nextToken") or "0"
        if not token.isdigit():
            raise InvalidNextTokenException()
        start, limit = int(token), p.get("maxResults") or 100
        out = {"recipes": [recipe_document(r) for r in recipes[start:start + limit]]}
        if start + limit < len(recipes):
            out["nextToken"] = str(start + limit)
        return out

    def describe_recipe(self, ctx: Context, p: dict) -> dict:
        recipe = RECIPES_BY_ARN.get(p["recipeArn"])
        if recipe is None:
            raise ResourceNotFoundException.for_arn(p["recipeArn"])
        return {"recipe": recipe_document(recipe)}

    def describe_algorithm(self, ctx: Context, p: dict) -> dict:
        recipe = ALGORITHMS.get(p["algorithmArn"])
        if recipe is None:
            raise ResourceNotFoundException.for_arn(p["algorithmArn"])
        doc = algorithm_document(recipe)
        # The model requires the image's dockerURI, and an image name is a Name (letters, digits,
        # "-" and "_"). Every algorithm here runs inside the openpersonalize package itself, so
        # the image is the package's, at this version.
        doc["algorithmImage"] = {"name": recipe.algorithm, "dockerURI": f"openpersonalize:{__version__}"}
        return {"algorithm": doc}

    def describe_feature_transformation(self, ctx: Context, p: dict) -> dict:
        arn = p["featureTransformationArn"]
        recipe = TRANSFORMATIONS.get(arn)
        if recipe is None:
            raise ResourceNotFoundException.for_arn(arn)
        return {"featureTransformation": transformation_document(arn, recipe)}
