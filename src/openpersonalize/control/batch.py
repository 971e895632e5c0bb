"""Batch inference jobs and batch segment jobs (the create-time rules; the work is in ``batch/``)."""

from __future__ import annotations

from ..recipes.registry import (
    EXPLORING_RECIPES,
    INFLUENCED_RECIPES,
    SEGMENT_RECIPES,
    THEME_RECIPES,
    ServedRecipe,
    served_recipe,
)
from .base import (
    CREATE_PENDING,
    Context,
    Rules,
    create_row,
    describe,
    invalid,
    list_page,
    name_free,
    pending_jobs,
    require,
    require_active,
)
from .data_jobs import check_s3_path
from .serving import check_exploration


def _check_locations(p: dict) -> tuple[str, str]:
    source = check_s3_path("jobInput.s3DataSource.path", p["jobInput"]["s3DataSource"]["path"])
    target = check_s3_path("jobOutput.s3DataDestination.path", p["jobOutput"]["s3DataDestination"]["path"])
    out_prefix = target if target.endswith("/") else target + "/"
    if out_prefix.startswith(source) or out_prefix.rstrip("/") == source.rstrip("/"):
        raise invalid("jobOutput.s3DataDestination.path", target,
                      f"lies under the input location {source}; the output must go elsewhere "
                      "(Invalid S3 output path).")
    return source, target


def _check_filter(ctx: Context, filter_arn: str | None, group_arn: str) -> None:
    if not filter_arn:
        return
    row = require(ctx, filter_arn, "filter")
    require_active(row, "Filter")
    if row.group_arn != group_arn:
        raise invalid("filterArn", filter_arn, f"belongs to dataset group {row.group_arn}, not to "
                      f"{group_arn} of the solution version.")


def _active_version(ctx: Context, arn: str) -> tuple:
    version = require(ctx, arn, "solution-version")
    require_active(version, "Solution version")
    return version, served_recipe(version.doc)


def _chosen(version, served: ServedRecipe) -> str:
    """The recipe as the user chose it: AutoML when the solution let the service choose."""
    return served.name if version.doc.get("recipeArn") else "AutoML"


class BatchInferenceJobOperations:
    def create_batch_inference_job(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("batch-inference-job", p["jobName"])
        rules = Rules(ctx, "batch-inference-job")
        rules.check(name_free(ctx, arn))
        version, served = _active_version(ctx, p["solutionVersionArn"])
        name = _chosen(version, served)
        can = served.capabilities
        if not can.batch_inference:
            raise invalid("solutionVersionArn", version.arn, f"uses {served.name}, which has no batch "
                          "inference" + (" (use CreateBatchSegmentJob)." if can.segment_queries_per_file else "."))
        mode = p.get("batchInferenceJobMode") or "BATCH_INFERENCE"
        if mode == "THEME_GENERATION":
            if not can.theme_generation:
                raise invalid("batchInferenceJobMode", mode, f"needs an {' or '.join(THEME_RECIPES)} solution "
                              f"version; this one uses {name}.")
            fields = ((p.get("themeGenerationConfig") or {}).get("fieldsForThemeGeneration") or {})
            if not fields.get("itemName"):
                raise invalid("themeGenerationConfig.fieldsForThemeGeneration.itemName", "",
                              "is required in THEME_GENERATION mode.")
        elif p.get("themeGenerationConfig"):
            raise invalid("themeGenerationConfig", p["themeGenerationConfig"],
                          "is allowed only with batchInferenceJobMode THEME_GENERATION.")
        config = p.get("batchInferenceJobConfig") or {}
        if config.get("itemExplorationConfig"):
            if not can.exploration:  # as CreateCampaign: a setting the recipe would ignore is refused
                raise invalid("batchInferenceJobConfig.itemExplorationConfig", config["itemExplorationConfig"],
                              f"applies only to {', '.join(EXPLORING_RECIPES)}; this solution uses {name}.")
            check_exploration("batchInferenceJobConfig.itemExplorationConfig", config["itemExplorationConfig"])
        if config.get("rankingInfluence") and not can.ranking_influence:
            raise invalid("batchInferenceJobConfig.rankingInfluence", config["rankingInfluence"],
                          f"applies only to {', '.join(INFLUENCED_RECIPES)}; this solution uses {name}.")
        num = p.get("numResults", 25)
        if not 1 <= num <= 500:
            raise invalid("numResults", num, "must be from 1 to 500.")
        _check_locations(p)
        _check_filter(ctx, p.get("filterArn"), version.group_arn)
        rules.check(pending_jobs(ctx, "batch-inference-job"))
        doc = {"jobName": p["jobName"], "solutionVersionArn": version.arn, "filterArn": p.get("filterArn"),
               "numResults": num, "jobInput": p["jobInput"], "jobOutput": p["jobOutput"],
               "roleArn": p["roleArn"], "batchInferenceJobConfig": p.get("batchInferenceJobConfig"),
               "batchInferenceJobMode": mode, "themeGenerationConfig": p.get("themeGenerationConfig"),
               "status": CREATE_PENDING}
        create_row(ctx, "batch-inference-job", arn, p["jobName"], doc, rules=rules,
                   group_arn=version.group_arn, parent_arn=version.arn, tags=p.get("tags"))
        return {"batchInferenceJobArn": arn}

    def describe_batch_inference_job(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["batchInferenceJobArn"], "batch-inference-job")

    def list_batch_inference_jobs(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "batch-inference-job", parent_arn=p.get("solutionVersionArn"))


class BatchSegmentJobOperations:
    def create_batch_segment_job(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("batch-segment-job", p["jobName"])
        rules = Rules(ctx, "batch-segment-job")
        rules.check(name_free(ctx, arn))
        version, served = _active_version(ctx, p["solutionVersionArn"])
        if served.capabilities.segment_queries_per_file is None:
            raise invalid("solutionVersionArn", version.arn, f"uses {_chosen(version, served)}; "
                          f"batch segment jobs need {' or '.join(SEGMENT_RECIPES)}.")
        num = p.get("numResults", 25)
        if not 1 <= num <= 5_000_000:
            raise invalid("numResults", num, "must be from 1 to 5000000.")
        _check_locations(p)
        _check_filter(ctx, p.get("filterArn"), version.group_arn)
        rules.check(pending_jobs(ctx, "batch-segment-job"))
        doc = {"jobName": p["jobName"], "solutionVersionArn": version.arn, "filterArn": p.get("filterArn"),
               "numResults": num, "jobInput": p["jobInput"], "jobOutput": p["jobOutput"],
               "roleArn": p["roleArn"], "status": CREATE_PENDING}
        create_row(ctx, "batch-segment-job", arn, p["jobName"], doc, rules=rules,
                   group_arn=version.group_arn, parent_arn=version.arn, tags=p.get("tags"))
        return {"batchSegmentJobArn": arn}

    def describe_batch_segment_job(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["batchSegmentJobArn"], "batch-segment-job")

    def list_batch_segment_jobs(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "batch-segment-job", parent_arn=p.get("solutionVersionArn"))
