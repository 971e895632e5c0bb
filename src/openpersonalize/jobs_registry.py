"""Imports every module that registers a job body, so that the runner knows them all."""

from .filters import lifecycle  # noqa: F401  (CreateFilter jobs)

from .data import deletion, exporter, importer  # noqa: F401,E402  (dataset import, export, deletion jobs)
