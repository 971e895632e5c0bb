"""Imports every module that registers a job body, so that the runner knows them all."""

from .batch import inference, segment  # noqa: F401  (batch inference and batch segment jobs)
from .data import deletion, exporter, importer  # noqa: F401  (dataset import, export, deletion jobs)
from .filters import lifecycle  # noqa: F401  (CreateFilter jobs)
from .jobs import recommenders, refresh, training  # noqa: F401  (recommenders, automatic updates, versions)
