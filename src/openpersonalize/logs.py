"""Log output: the usual text lines, or one JSON object per line (``--log-format json``) for log
collectors. Fields passed with ``extra=`` (the request log's ``operation``, ``status``, ``error``,
``ms``) become members of the JSON object."""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
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


_listener: logging.handlers.QueueListener | None = None


class _Handoff(logging.handlers.QueueHandler):
    """Hands the record over as it is: QueueHandler would format it first, on the caller's thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Log to standard error in ``fmt``. Records are handed through a queue to a thread that
    formats and writes them, so that the event loop answering requests never waits on the
    terminal or a pipe (a request line costs it a few microseconds)."""
    global _listener
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(LOG_FORMAT))
    if _listener is not None:
        _listener.stop()
    _listener = logging.handlers.QueueListener(queue.SimpleQueue(), handler)
    root = logging.getLogger()
    root.handlers[:] = [_Handoff(_listener.queue)]
    root.setLevel(level)
    _listener.start()
    atexit.register(_flush)


def _flush() -> None:
    """Write what is still queued (at exit)."""
    if _listener is not None:
        _listener.stop()


def flush() -> None:
    """Write everything queued so far, and go on logging (a server shutting down calls it: a
    signal may end the process before exit handlers run)."""
    if _listener is not None and _listener._thread is not None:
        _listener.stop()
        _listener.start()
