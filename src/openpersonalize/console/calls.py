"""The console acts through the same operations as boto3: each call is validated against the
botocore model and handled by the same code, so the rules and the errors are identical."""

from __future__ import annotations

from ..api import protocol
from ..control.base import Context

_BY_NAME: dict[tuple[str, str], protocol.Operation] = {}


def operation(service: str, name: str) -> protocol.Operation:
    if not _BY_NAME:
        for op in protocol.all_operations():
            _BY_NAME[(op.service, op.name)] = op
    return _BY_NAME[(service, name)]


def invoke(service, name: str, params: dict, api: str = "personalize") -> dict:
    """Call operation ``name`` of ``api`` (personalize, personalize-runtime, personalize-events)
    as an API request would; raises the same ServiceError subclasses."""
    op = operation(api, name)
    checked = protocol.validate_input(op, params)
    ctx = Context(settings=service.settings, store=service.store, region=service.settings.region,
                  request_id="console", state=service.state)
    return service.call(op, ctx, checked) or {}
