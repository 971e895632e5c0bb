"""Log output: the usual text lines, or one JSON object per line (``--log-format json``) for log
collectors. Fields passed with ``extra=`` (the request log's ``operation``, ``status``, ``error``,
``ms``) become members of the JSON object."""

from __future__ import annotations

import json
import logging
import time

from .config import LOG_FORMAT

#: ``extra`` fields copied into JSON lines.
FIELDS = ("operation", "method", "path", "status", "error", "ms", "arn", "kind")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
