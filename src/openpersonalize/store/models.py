"""Where trained models live, and a per-process cache of loaded ones.

A model is a folder of ``.npy`` arrays plus ``manifest.json`` under
``<data_dir>/models/<region>/<account>/<resource path of its ARN>`` (a solution version's
``solution/<name>/<id>``, a recommender's ``recommender/<name>/<training id>``); it is
memory-mapped when loaded, so several processes serving the same model share its pages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..config import Settings


def model_dir(settings: Settings, model_arn: str) -> Path:
    """The model folder of a solution version or of one training of a recommender."""
    parts = model_arn.split(":", 5)
    region, account, resource = parts[3], parts[4], parts[5]
    segments = resource.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"not a model ARN: {model_arn}")
    return Path(settings.data_dir).resolve().joinpath("models", region, account, *segments)


def model_arn_of(row) -> str:
    """The model a solution version or recommender serves now: its latest automatic update
    (``_modelArn``, see jobs/refresh.py), else the model trained with it."""
    return row.doc.get("_modelArn") or row.arn


_cache: OrderedDict[str, object] = OrderedDict()
_lock = threading.Lock()
CACHE_SIZE = 8


def load_model(settings: Settings, version_arn: str):
    """The model of a solution version, loaded once per process (least recently used evicted)."""
    from ..recipes.base import Model

    path = str(model_dir(settings, version_arn))
    with _lock:
        if path in _cache:
            _cache.move_to_end(path)
            return _cache[path]
    model = Model.load(path)
    with _lock:
        _cache[path] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return model
