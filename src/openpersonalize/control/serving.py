"""Campaigns (custom dataset groups) and recommenders (domain dataset groups)."""

from __future__ import annotations

from ..errors import InvalidInputException, ResourceInUseException
from ..recipes.catalogue import RECIPES_BY_ARN
from ..recipes.registry import capabilities
from .base import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_PENDING,
    IN_FLIGHT,
    Context,
    Rules,
    create_row,
    describe,
    invalid,
    list_page,
    name_free,
    now,
    quota,
    require,
    require_active,
)

LATEST = "/$LATEST"


def _resolve_version(ctx: Context, arn: str, config: dict) -> tuple[str, str]:
    """``(solutionArn, recipeArn)`` for a campaign's ``solutionVersionArn`` (or ``$LATEST`` form)."""
    if arn.endswith(LATEST):
        solution = require(ctx, arn[: -len(LATEST)], "solution")
        return solution.arn, solution.doc.get("recipeArn") or ""
    if config.get("syncWithLatestSolutionVersion"):
        raise invalid("solutionVersionArn", arn, "must be the {solutionArn}/$LATEST form when "
                      "campaignConfig.syncWithLatestSolutionVersion is true.")
    version = require(ctx, arn, "solution-version")
    require_active(version, "Solution version")
    return version.doc["solutionArn"], version.doc.get("recipeArn") or ""


def _check_campaign_config(recipe_arn: str, config: dict) -> None:
    known = recipe_arn in RECIPES_BY_ARN
    can = capabilities(recipe_arn) if known else None
    name = recipe_arn.rsplit("/", 1)[-1] if known else recipe_arn
    if can is not None and not can.serves_campaigns:
        raise invalid("solutionVersionArn", recipe_arn, f"is a {can.recipe_type} solution; use "
                      "CreateBatchSegmentJob, campaigns do not serve it.")
    exploration = config.get("itemExplorationConfig")
    if exploration:
        if can is None or not can.exploration:
            raise invalid("campaignConfig.itemExplorationConfig", exploration,
                          f"applies only to aws-user-personalization; this solution uses {name}.")
        check_exploration("campaignConfig.itemExplorationConfig", exploration)
    if config.get("rankingInfluence") and (can is None or not can.ranking_influence):
        raise invalid("campaignConfig.rankingInfluence", config["rankingInfluence"],
                      f"applies only to aws-semantic-similarity; this solution uses {name}.")
    for key, value in (config.get("rankingInfluence") or {}).items():
        if key not in ("POPULARITY", "FRESHNESS") or not 0.0 <= value <= 1.0:
            raise invalid(f"campaignConfig.rankingInfluence.{key}", value,
                          "must be POPULARITY or FRESHNESS with a value from 0.0 to 1.0.")


def check_exploration(member: str, exploration: dict) -> None:
    for key, value in exploration.items():
        if key not in ("explorationWeight", "explorationItemAgeCutOff"):
            raise invalid(member, key, "is not an exploration setting (explorationWeight, "
                          "explorationItemAgeCutOff).")
        try:
            number = float(value)
        except ValueError:
            raise invalid(f"{member}.{key}", value, "must be a number.") from None
        if key == "explorationWeight" and not 0.0 <= number <= 1.0:
            raise invalid(f"{member}.{key}", value, "must be from 0.0 to 1.0.")
        if key == "explorationItemAgeCutOff" and number <= 0:
            raise invalid(f"{member}.{key}", value, "must be a positive number of days.")


class CampaignOperations:
    def create_campaign(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("campaign", p["name"])
        rules = Rules(ctx, "campaign")
        rules.check(name_free(ctx, arn))
        config = p.get("campaignConfig") or {}
        solution_arn, recipe_arn = _resolve_version(ctx, p["solutionVersionArn"], config)
        _check_campaign_config(recipe_arn, config)
        solution = require(ctx, solution_arn, "solution")
        limit = ctx.settings.max_campaigns_per_group
        rules.check(quota(ctx, "campaign", limit, f"Cannot create a campaign. More than {limit} resources "
                          "in ACTIVE state. Please delete some and try again.",
                          group_arn=solution.group_arn, statuses=(ACTIVE,) + IN_FLIGHT))
        doc = {"name": p["name"], "solutionVersionArn": p["solutionVersionArn"],
               "minProvisionedTPS": p.get("minProvisionedTPS", 1), "campaignConfig": config,
               "status": ACTIVE}
        create_row(ctx, "campaign", arn, p["name"], doc, rules=rules, group_arn=solution.group_arn,
                   parent_arn=solution_arn, tags=p.get("tags"))
        return {"campaignArn": arn}

    def describe_campaign(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["campaignArn"], "campaign")

    def list_campaigns(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "campaign", parent_arn=p.get("solutionArn"))

    def update_campaign(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["campaignArn"], "campaign")
        if row.status not in (ACTIVE, CREATE_FAILED):
            raise ResourceInUseException(f"Campaign {row.arn} is {row.status}; it can be updated only "
                                         "when ACTIVE or CREATE FAILED.")
        config = {**(row.doc.get("campaignConfig") or {}), **(p.get("campaignConfig") or {})}
        version_arn = p.get("solutionVersionArn") or row.doc["solutionVersionArn"]
        solution_arn, recipe_arn = _resolve_version(ctx, version_arn, config)
        if solution_arn != row.parent_arn:
            raise invalid("solutionVersionArn", version_arn, f"belongs to another solution than "
                          f"{row.parent_arn}, which campaign {row.arn} serves.")
        _check_campaign_config(recipe_arn, config)
        stamp = now()
        tps = p.get("minProvisionedTPS", row.doc.get("minProvisionedTPS", 1))
        ctx.store.update_doc(row.arn, {
            "solutionVersionArn": version_arn, "minProvisionedTPS": tps, "campaignConfig": config,
            "status": ACTIVE,
            "latestCampaignUpdate": {"solutionVersionArn": version_arn, "minProvisionedTPS": tps,
                                     "campaignConfig": config, "status": ACTIVE,
                                     "creationDateTime": stamp, "lastUpdatedDateTime": stamp}})
        ctx.state.forget_campaign(row.arn)
        return {"campaignArn": row.arn}

    def delete_campaign(self, ctx: Context, p: dict) -> dict:
        require(ctx, p["campaignArn"], "campaign")
        ctx.store.delete(p["campaignArn"])
        ctx.state.forget_campaign(p["campaignArn"])
        return {}


class RecommenderOperations:
    def create_recommender(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("recommender", p["name"])
        rules = Rules(ctx, "recommender")
        rules.check(name_free(ctx, arn))
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")
        domain = group.doc.get("domain")
        recipe = RECIPES_BY_ARN.get(p["recipeArn"])
        if recipe is None or recipe.domain is None:
            raise invalid("recipeArn", p["recipeArn"], "is not a domain use case (ListRecipes with a "
                          "domain lists them).")
        if not domain:
            raise invalid("datasetGroupArn", group.arn, "is not a domain dataset group; recommenders "
                          "need one (create the group with domain ECOMMERCE or VIDEO_ON_DEMAND).")
        if recipe.domain != domain:
            raise invalid("recipeArn", recipe.arn, f"is a {recipe.domain} use case, but dataset group "
                          f"{group.arn} has domain {domain}.")
        config = p.get("recommenderConfig") or {}
        if config.get("itemExplorationConfig"):
            check_exploration("recommenderConfig.itemExplorationConfig", config["itemExplorationConfig"])
        limit = ctx.settings.max_recommenders_per_group
        rules.check(quota(ctx, "recommender", limit, f"Cannot create a recommender. More than {limit} "
                          "recommenders in the dataset group.", group_arn=group.arn))
        config.setdefault("minRecommendationRequestsPerSecond", 1)
        doc = {"name": p["name"], "datasetGroupArn": group.arn, "recipeArn": recipe.arn,
               "recommenderConfig": config, "status": CREATE_PENDING}
        create_row(ctx, "recommender", arn, p["name"], doc, rules=rules, group_arn=group.arn,
                   tags=p.get("tags"))
        return {"recommenderArn": arn}

    def describe_recommender(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["recommenderArn"], "recommender")

    def list_recommenders(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "recommender", group_arn=p.get("datasetGroupArn"))

    def update_recommender(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["recommenderArn"], "recommender")
        require_active(row, "Recommender")
        config = {**(row.doc.get("recommenderConfig") or {}), **p["recommenderConfig"]}
        if config.get("itemExplorationConfig"):
            check_exploration("recommenderConfig.itemExplorationConfig", config["itemExplorationConfig"])
        stamp = now()
        ctx.store.update_doc(row.arn, {
            "recommenderConfig": config,
            "latestRecommenderUpdate": {"recommenderConfig": config, "status": ACTIVE,
                                        "creationDateTime": stamp, "lastUpdatedDateTime": stamp}})
        ctx.state.forget_recommender(row.arn)
        return {"recommenderArn": row.arn}

    def start_recommender(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["recommenderArn"], "recommender")
        if row.status != "INACTIVE":
            raise ResourceInUseException(f"Recommender {row.arn} is {row.status}; only an INACTIVE "
                                         "recommender can be started.")
        ctx.store.update_doc(row.arn, {"status": ACTIVE})
        return {"recommenderArn": row.arn}

    def stop_recommender(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["recommenderArn"], "recommender")
        if row.status != ACTIVE:
            raise ResourceInUseException(f"Recommender {row.arn} is {row.status}; only an ACTIVE "
                                         "recommender can be stopped.")
        ctx.store.update_doc(row.arn, {"status": "INACTIVE"})
        ctx.state.forget_recommender(row.arn)
        return {"recommenderArn": row.arn}

    def delete_recommender(self, ctx: Context, p: dict) -> dict:
        require(ctx, p["recommenderArn"], "recommender")
        ctx.store.delete(p["recommenderArn"])
        ctx.state.forget_recommender(p["recommenderArn"])
        return {}


__all__ = ["CampaignOperations", "RecommenderOperations", "InvalidInputException"]
