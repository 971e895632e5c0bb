"""Where trained models live, and a per-process cache of loaded ones.

A solution version's model is a folder of ``.npy`` arrays plus ``manifest.json`` under
``<data_dir>/models/<region>/<account>/<solution>/<version id>``; it is memory-mapped when loaded,
so several processes serving the same version share its pages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..config import Settings


def model_dir(settings: Settings, version_arn: str) -> Path:
    """The model folder of a solution version (``arn:...:solution/<name>/<id>``)."""
    parts = version_arn.split(":", 5)
    region, account, resource = parts[3], parts[4], parts[5]
    _, name, version = resource.split("/", 2)
    return Path(settings.data_dir).resolve() / "models" / region / account / name / version


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
