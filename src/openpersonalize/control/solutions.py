"""Solutions, solution versions and solution metrics."""

from __future__ import annotations

import re

from ..errors import InvalidInputException, ResourceInUseException, ResourceNotFoundException
from ..recipes.catalogue import RECIPES_BY_ARN, Recipe
from ..recipes.registry import INCREMENTAL_RECIPES, UPDATE_RECIPES, capabilities
from .base import (
    ACTIVE,
    CREATE_PENDING,
    IN_FLIGHT,
    Context,
    Rules,
    create_row,
    invalid,
    list_page,
    name_free,
    now,
    quota,
    require,
    require_active,
    short_id,
)

_SCHEDULE = re.compile(r"rate\((\d+) days?\)")
CREATE_STOPPING = "CREATE STOPPING"
CREATE_STOPPED = "CREATE STOPPED"


def recipe_for(arn: str, member: str = "recipeArn") -> Recipe:
    recipe = RECIPES_BY_ARN.get(arn)
    if recipe is None:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist (no such recipe; "
                                        "ListRecipes shows them all).")
    return recipe


def check_solution_config(recipe: Recipe | None, config: dict, *, perform_hpo: bool) -> None:
    """Every rule of ``solutionConfig`` that can be checked before training."""
    algo = config.get("algorithmHyperParameters") or {}
    feature = config.get("featureTransformationParameters") or {}
    for where, values, member in (("algorithm", algo, "algorithmHyperParameters"),
                                  ("feature", feature, "featureTransformationParameters")):
        for name, value in values.items():
            param = recipe.param(name, where) if recipe else None
            if param is None:
                known = [p.name for p in recipe.params if p.where == where] if recipe else []
                raise invalid(f"solutionConfig.{member}", name,
                              f"is not a {where} hyperparameter of "
                              f"{recipe.name if recipe else 'this solution'}"
                              f" (known: {', '.join(known) or 'none'}).")
            rule = param.check(value)
            if rule:
                raise invalid(f"solutionConfig.{member}.{name}", value, rule + ".")
    threshold = config.get("eventValueThreshold")
    if threshold is not None:
        try:
            float(threshold)
        except ValueError:
            raise invalid("solutionConfig.eventValueThreshold", threshold, "must be a number.") from None
    schedule = (config.get("autoTrainingConfig") or {}).get("schedulingExpression")
    if schedule is not None:
        m = _SCHEDULE.fullmatch(schedule.strip())
        if not m or not 1 <= int(m.group(1)) <= 30:
            raise invalid("solutionConfig.autoTrainingConfig.schedulingExpression", schedule,
                          "must be rate(N days) with N from 1 to 30.")
    hpo = config.get("hpoConfig")
    if hpo:
        if not perform_hpo:
            raise invalid("solutionConfig.hpoConfig", "hpoConfig", "is given but performHPO is not true.")
        _check_hpo(recipe, hpo)
    elif perform_hpo and recipe and not any(p.tunable for p in recipe.params):
        raise invalid("performHPO", "true", f"is not supported: {recipe.name} has no tunable hyperparameters.")
    auto_ml = config.get("autoMLConfig")
    if auto_ml:
        for arn in auto_ml.get("recipeList") or []:
            r = recipe_for(arn, "solutionConfig.autoMLConfig.recipeList")
            if capabilities(r.name).recipe_type != "USER_PERSONALIZATION" or r.domain:
                raise invalid("solutionConfig.autoMLConfig.recipeList", arn,
                              "is not a USER_PERSONALIZATION recipe.")


def _check_hpo(recipe: Recipe | None, hpo: dict) -> None:
    ranges = hpo.get("algorithmHyperParameterRanges") or {}
    for key in ("integerHyperParameterRanges", "continuousHyperParameterRanges",
                "categoricalHyperParameterRanges"):
        for rng in ranges.get(key) or []:
            name = rng.get("name", "")
            param = recipe.param(name) if recipe else None
            member = f"solutionConfig.hpoConfig.algorithmHyperParameterRanges.{key}"
            if param is None or not param.tunable:
                raise invalid(member, name, f"is not a tunable hyperparameter of "
                              f"{recipe.name if recipe else 'this solution'}.")
            if key == "categoricalHyperParameterRanges":
                values = rng.get("values") or []
                if not values:
                    raise invalid(member, name, "needs at least one value.")
                for v in values:
                    if param.check(v):
                        raise invalid(f"{member}.{name}.values", v, param.check(v) + ".")
                continue
            expected = "int" if key.startswith("integer") else "float"
            if param.kind != expected:
                raise invalid(member, name, f"is a {param.kind} hyperparameter; give it in "
                              f"{'integer' if param.kind == 'int' else 'continuous' if param.kind == 'float' else 'categorical'}HyperParameterRanges.")
            lo, hi = rng.get("minValue"), rng.get("maxValue")
            if lo is None or hi is None or lo > hi:
                raise invalid(f"{member}.{name}", f"[{lo}, {hi}]", "must have minValue <= maxValue.")
            for bound in (lo, hi):
                rule = param.check(str(bound))
                if rule:
                    raise invalid(f"{member}.{name}", bound, rule + ".")
    resources = hpo.get("hpoResourceConfig") or {}
    for key in ("maxNumberOfTrainingJobs", "maxParallelTrainingJobs"):
        value = resources.get(key)
        if value is not None and (not value.isdigit() or not 1 <= int(value) <= 40):
            raise invalid(f"solutionConfig.hpoConfig.hpoResourceConfig.{key}", value,
                          "must be an integer from 1 to 40.")


class SolutionOperations:
    def create_solution(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("solution", p["name"])
        rules = Rules(ctx, "solution")
        rules.check(name_free(ctx, arn))
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")
        auto_ml = p.get("performAutoML", False)
        recipe = None
        if auto_ml and p.get("recipeArn"):
            raise invalid("recipeArn", p["recipeArn"], "must be omitted when performAutoML is true.")
        if not auto_ml:
            if not p.get("recipeArn"):
                raise InvalidInputException("Invalid recipeArn: a recipe is required unless performAutoML is true.")
            recipe = recipe_for(p["recipeArn"])
            if recipe.domain:
                raise invalid("recipeArn", recipe.arn, f"is a {recipe.domain} use case; use CreateRecommender.")
        config = p.get("solutionConfig") or {}
        check_solution_config(recipe, config, perform_hpo=p.get("performHPO", False))
        if p.get("performIncrementalUpdate") and (recipe is None or not capabilities(recipe.name).incremental_update):
            raise invalid("performIncrementalUpdate", "true",
                          f"is supported only by {', '.join(INCREMENTAL_RECIPES)}.")
        limit = ctx.settings.max_solutions_per_group
        rules.check(quota(ctx, "solution", limit, f"Cannot create a solution. More than {limit} solutions "
                          "in the dataset group. Please delete some and try again.", group_arn=group.arn))
        doc = {"name": p["name"], "performHPO": p.get("performHPO", False), "performAutoML": auto_ml,
               "performAutoTraining": p.get("performAutoTraining", True),
               "performIncrementalUpdate": p.get("performIncrementalUpdate", False),
               "recipeArn": p.get("recipeArn"), "datasetGroupArn": group.arn,
               "eventType": p.get("eventType"), "solutionConfig": config, "status": ACTIVE}
        create_row(ctx, "solution", arn, p["name"], doc, rules=rules, group_arn=group.arn,
                   tags=p.get("tags"))
        return {"solutionArn": arn}

    def describe_solution(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["solutionArn"], "solution")
        doc = dict(row.doc)
        latest = ctx.store.query("solution-version", parent_arn=row.arn, limit=1)
        if latest:
            doc["latestSolutionVersion"] = latest[0].doc
        return {"solution": doc}

    def list_solutions(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "solution", group_arn=p.get("datasetGroupArn"))

    def update_solution(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["solutionArn"], "solution")
        require_active(row, "Solution")
        pending = (row.doc.get("latestSolutionUpdate") or {}).get("status")
        if pending in IN_FLIGHT:
            raise ResourceInUseException(f"Solution {row.arn} already has an update in progress.")
        update_config = p.get("solutionUpdateConfig") or {}
        recipe = RECIPES_BY_ARN.get(row.doc.get("recipeArn") or "")
        check_solution_config(recipe, update_config, perform_hpo=False)
        changes: dict = {}
        config = dict(row.doc.get("solutionConfig") or {})
        for key in ("autoTrainingConfig", "eventsConfig"):
            if key in update_config:
                config[key] = update_config[key]
        changes["solutionConfig"] = config
        for key in ("performAutoTraining", "performIncrementalUpdate"):
            if key in p:
                changes[key] = p[key]
        stamp = now()
        changes["latestSolutionUpdate"] = {
            "solutionUpdateConfig": update_config, "status": ACTIVE,
            "performAutoTraining": changes.get("performAutoTraining", row.doc.get("performAutoTraining")),
            "performIncrementalUpdate": changes.get("performIncrementalUpdate",
                                                    row.doc.get("performIncrementalUpdate")),
            "creationDateTime": stamp, "lastUpdatedDateTime": stamp}
        ctx.store.update_doc(row.arn, changes)
        return {"solutionArn": row.arn}

    def delete_solution(self, ctx: Context, p: dict) -> dict:
        arn = p["solutionArn"]
        row = require(ctx, arn, "solution")
        versions = ctx.store.query("solution-version", parent_arn=arn)
        for v in versions:
            if v.status in IN_FLIGHT or v.status == CREATE_STOPPING:
                raise ResourceInUseException(f"Resource {arn} is in use by {v.arn}, which is {v.status}.")
        for campaign in ctx.store.query("campaign", parent_arn=arn):
            raise ResourceInUseException(f"Resource {arn} is in use by {campaign.arn}.")
        with ctx.store.transaction() as conn:
            for v in versions:
                ctx.store.delete(v.arn, conn=conn)
            ctx.store.delete(row.arn, conn=conn)
        for v in versions:
            ctx.state.forget_version(v.arn)
        return {}


class SolutionVersionOperations:
    def create_solution_version(self, ctx: Context, p: dict, *, automatic: bool = False) -> dict:
        solution = require(ctx, p["solutionArn"], "solution")
        require_active(solution, "Solution")
        mode = p.get("trainingMode") or "FULL"
        recipe_arn = solution.doc.get("recipeArn") or ""
        if mode == "UPDATE":
            name = recipe_arn.rsplit("/", 1)[-1]
            if recipe_arn not in RECIPES_BY_ARN or not capabilities(recipe_arn).training_update:
                raise invalid("trainingMode", "UPDATE", f"is supported only by {', '.join(UPDATE_RECIPES)}; "
                              f"solution {solution.arn} uses {name or 'AutoML'}.")
            full = [v for v in ctx.store.query("solution-version", parent_arn=solution.arn)
                    if v.status == ACTIVE and v.doc.get("trainingMode") == "FULL"]
            if not full:
                raise invalid("trainingMode", "UPDATE", f"needs an ACTIVE FULL version of {solution.arn}.")
        elif mode == "AUTOTRAIN":
            raise invalid("trainingMode", mode, "is used only by automatic training; give FULL or UPDATE.")
        limit = ctx.settings.max_pending_solution_versions
        rules = Rules(ctx, "solution-version")
        rules.check(quota(ctx, "solution-version", limit, f"More than {limit} resources with PENDING or "
                          "IN_PROGRESS status.", statuses=IN_FLIGHT))
        arn = f"{solution.arn}/{short_id()}"
        doc = {key: solution.doc.get(key) for key in (
            "solutionArn", "performHPO", "performAutoML", "performIncrementalUpdate", "recipeArn",
            "eventType", "datasetGroupArn", "solutionConfig")}
        doc.update({"name": p.get("name"), "trainingMode": "AUTOTRAIN" if automatic else mode,
                    "trainingType": "AUTOMATIC" if automatic else "MANUAL", "status": CREATE_PENDING})
        create_row(ctx, "solution-version", arn, p.get("name") or arn.rsplit("/", 1)[1], doc, rules=rules,
                   group_arn=solution.group_arn, parent_arn=solution.arn, tags=p.get("tags"))
        return {"solutionVersionArn": arn}

    def describe_solution_version(self, ctx: Context, p: dict) -> dict:
        return {"solutionVersion": require(ctx, p["solutionVersionArn"], "solution-version").doc}

    def list_solution_versions(self, ctx: Context, p: dict) -> dict:
        if p.get("solutionArn"):
            require(ctx, p["solutionArn"], "solution")
        return list_page(ctx, p, "solution-version", parent_arn=p.get("solutionArn"))

    def stop_solution_version_creation(self, ctx: Context, p: dict) -> dict:
        arn = p["solutionVersionArn"]
        # The lock every rewrite of the document takes (the job's outcome too): the status read
        # here is still the status when the update below is written.
        with ctx.store.serialised("update:" + arn) as conn:
            row = ctx.store.get(arn, conn=conn)
            if row is None or row.kind != "solution-version":
                raise ResourceNotFoundException.for_arn(arn)
            if row.status not in IN_FLIGHT:
                raise ResourceInUseException(f"Solution version {arn} is {row.status}; only a version in "
                                             "CREATE PENDING or CREATE IN_PROGRESS can be stopped.")
            target = CREATE_STOPPED if row.status == CREATE_PENDING else CREATE_STOPPING
            ctx.store.update_doc(arn, {"status": target}, conn=conn)
            ctx.store.request_cancel(arn, conn)
        return {}

    def get_solution_metrics(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["solutionVersionArn"], "solution-version")
        require_active(row, "Solution version")
        return {"solutionVersionArn": row.arn, "metrics": row.doc.get("_metrics") or {}}
