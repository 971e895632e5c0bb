"""Tags on every taggable resource."""

from __future__ import annotations

from ..errors import ResourceNotFoundException, TooManyTagKeysException, TooManyTagsException
from .base import Context, kind_of_arn


def _tagged(ctx: Context, arn: str, conn=None):
    row = ctx.store.get(arn, conn=conn) if kind_of_arn(arn) else None
    if row is None:
        raise ResourceNotFoundException.for_arn(arn)
    return row


class TagOperations:
    # Tagging reads the tags, changes them and writes them back as one step (serialised per
    # resource): concurrent calls neither lose each other's changes nor together pass the limit.

    def tag_resource(self, ctx: Context, p: dict) -> dict:
        _tagged(ctx, p["resourceArn"])
        with ctx.store.serialised(f"update:{p['resourceArn']}") as conn:
            row = _tagged(ctx, p["resourceArn"], conn)
            tags = {**row.tags, **{t["tagKey"]: t["tagValue"] for t in p["tags"]}}
            if len(tags) > ctx.settings.max_tags:
                raise TooManyTagsException(
                    f"Invalid tags: resource {row.arn} would have {len(tags)} tags; the limit is "
                    f"{ctx.settings.max_tags}.")
            ctx.store.set_tags(row.arn, tags, conn=conn)
        return {}

    def untag_resource(self, ctx: Context, p: dict) -> dict:
        _tagged(ctx, p["resourceArn"])
        keys = p["tagKeys"]
        if len(keys) > ctx.settings.max_tags:
            raise TooManyTagKeysException(
                f"Invalid tagKeys: {len(keys)} keys given; a resource has at most {ctx.settings.max_tags}.")
        with ctx.store.serialised(f"update:{p['resourceArn']}") as conn:
            row = _tagged(ctx, p["resourceArn"], conn)
            ctx.store.set_tags(row.arn, {k: v for k, v in row.tags.items() if k not in keys}, conn=conn)
        return {}

    def list_tags_for_resource(self, ctx: Context, p: dict) -> dict:
        row = _tagged(ctx, p["resourceArn"])
        return {"tags": [{"tagKey": k, "tagValue": v} for k, v in row.tags.items()]}
