"""Tags on every taggable resource."""

from __future__ import annotations

from ..errors import ResourceNotFoundException, TooManyTagKeysException, TooManyTagsException
from .base import Context, kind_of_arn


def _tagged(ctx: Context, arn: str):
    row = ctx.store.get(arn) if kind_of_arn(arn) else None
    if row is None:
        raise ResourceNotFoundException.for_arn(arn)
    return row


class TagOperations:
    def tag_resource(self, ctx: Context, p: dict) -> dict:
        row = _tagged(ctx, p["resourceArn"])
        tags = {**row.tags, **{t["tagKey"]: t["tagValue"] for t in p["tags"]}}
        if len(tags) > ctx.settings.max_tags:
            raise TooManyTagsException(
                f"Invalid tags: resource {row.arn} would have {len(tags)} tags; the limit is "
                f"{ctx.settings.max_tags}.")
        ctx.store.set_tags(row.arn, tags)
        return {}

    def untag_resource(self, ctx: Context, p: dict) -> dict:
        row = _tagged(ctx, p["resourceArn"])
        keys = p["tagKeys"]
        if len(keys) > ctx.settings.max_tags:
            raise TooManyTagKeysException(
                f"Invalid tagKeys: {len(keys)} keys given; a resource has at most {ctx.settings.max_tags}.")
        ctx.store.set_tags(row.arn, {k: v for k, v in row.tags.items() if k not in keys})
        return {}

    def list_tags_for_resource(self, ctx: Context, p: dict) -> dict:
        row = _tagged(ctx, p["resourceArn"])
        return {"tags": [{"tagKey": k, "tagValue": v} for k, v in row.tags.items()]}
