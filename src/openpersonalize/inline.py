"""Work the server may do on its event loop, and how code says it would block it.

The server answers a runtime call on its event loop when everything the call needs is in memory
and cheap to compute (api/app.py): a thread hand-off costs more than such a call. Inside
``inline_only()``, code about to block (read the store, load a model, build filter data, score a
very large catalogue) calls ``blocking(what)`` first, which raises ``WouldBlock`` there; the
caller then hands the whole call to a worker thread, where blocking harms no one. Outside the
block, ``blocking`` does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars


class WouldBlock(Exception):
    """Raised by :func:`blocking` inside :func:`inline_only`, before anything was done."""


_inline = contextvars.ContextVar("openpersonalize_inline", default=False)


@contextlib.contextmanager
def inline_only():
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)


def blocking(what: str) -> None:
    """Declare that the caller is about to block (``what``: for the exception's message)."""
    if _inline.get():
        raise WouldBlock(what)
