"""Where trained models live, and how they are saved, fetched and loaded.

A model is a folder of ``.npy`` arrays plus ``manifest.json`` under
``<data_dir>/models/<region>/<account>/<resource path of its ARN>`` (a solution version's
``solution/<name>/<id>``, a recommender's ``recommender/<name>/<training id>``); it is
memory-mapped when loaded, so several processes serving the same model share its pages.

When the data root is an S3 prefix (``OPENPERSONALIZE_DATA_ROOT=s3://...``), that local folder is
a cache: ``save_model`` also uploads the model to ``<data root>/models/...`` (the manifest last,
so a half-uploaded model is never taken for a whole one), and ``local_model_dir`` downloads it on
a machine that does not have it yet. API processes, workers and Ray nodes then share models
through S3 alone, with no shared filesystem.

``load_model`` loads afresh on every call (memory-mapping makes that cheap, and the pages are
shared anyway); a server process shares one loaded model among the deployments that serve it
through its ``ProcessState`` (state.py), which lets it go with the last of them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from ..config import Settings
from ..recipes import registry  # noqa: F401  (every recipe module registers its model classes)
from ..recipes.base import MANIFEST, Model  # MANIFEST's presence marks a whole model folder
from .files import storage


def _segments(model_arn: str) -> list[str]:
    parts = model_arn.split(":", 5)
    if len(parts) != 6:
        raise ValueError(f"not a model ARN: {model_arn}")
    segments = [parts[3], parts[4], *parts[5].split("/")]
    if any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"not a model ARN: {model_arn}")
    return segments


def _remote_key(model_arn: str) -> str:
    """A model's folder under a remote data root."""
    return "/".join(["models", *_segments(model_arn)])


def model_dir(settings: Settings, model_arn: str) -> Path:
    """The model folder of a solution version or of one training of a recommender."""
    return Path(settings.data_dir).resolve().joinpath("models", *_segments(model_arn))


def _shared_root(settings: Settings):
    """The data root when it is remote (S3): where models are shared. None for a local root."""
    root = storage(settings).data_root
    return None if isinstance(root.fs, LocalFileSystem) else root


def save_model(settings: Settings, model_arn: str, model) -> Path:
    """Write ``model`` as the model of ``model_arn`` (and share it through a remote data root)."""
    path = model_dir(settings, model_arn)
    model.save(path)
    root = _shared_root(settings)
    if root is not None:
        rel = _remote_key(model_arn)
        files = sorted(f for f in path.iterdir() if f.is_file() and f.name != MANIFEST)
        for f in [*files, path / MANIFEST]:
            root.fs.put_file(str(f), root.path(rel, f.name))
    return path


def local_model_dir(settings: Settings, model_arn: str) -> Path:
    """``model_dir``, first fetched from a remote data root when this machine lacks the model.
    The folder may still be missing (no such model anywhere): callers check."""
    path = model_dir(settings, model_arn)
    if (path / MANIFEST).exists():
        return path
    root = _shared_root(settings)
    if root is None:
        return path
    try:
        remote = root.fs.find(root.path(_remote_key(model_arn)), maxdepth=1)
    except FileNotFoundError:
        return path
    names = {f.rsplit("/", 1)[1]: f for f in remote}
    if MANIFEST not in names:
        return path
    path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=path))
    try:
        for name, remote_file in names.items():
            root.fs.get_file(remote_file, str(staging / name))
        for name in sorted(names, key=lambda n: n == MANIFEST):  # the manifest last: it marks the whole
            (staging / name).replace(path / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def model_subfolders(settings: Settings, model_arn: str) -> list[str]:
    """Names of the folders directly inside ``model_arn``'s folder (a version's updates, a
    recommender's trainings), here and in a remote data root."""
    local = model_dir(settings, model_arn)
    names = {p.name for p in local.iterdir() if p.is_dir() and not p.name.startswith(".")} if local.exists() else set()
    root = _shared_root(settings)
    if root is not None:
        try:
            entries = root.fs.ls(root.path(_remote_key(model_arn)), detail=True)
        except FileNotFoundError:
            entries = []
        names |= {e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory"}
    return sorted(names)


def remove_model(settings: Settings, model_arn: str) -> None:
    """Delete a model folder here and in a remote data root."""
    shutil.rmtree(model_dir(settings, model_arn), ignore_errors=True)
    root = _shared_root(settings)
    if root is not None:
        root.remove(_remote_key(model_arn))


def model_arn_of(row) -> str:
    """The model a solution version or recommender serves now: its latest automatic update
    (``_modelArn``, see jobs/refresh.py), else the model trained with it."""
    return row.doc.get("_modelArn") or row.arn


def load_model(settings: Settings, version_arn: str):
    """The model of a solution version (or of a recommender's training), memory-mapped."""
    return Model.load(local_model_dir(settings, version_arn))
