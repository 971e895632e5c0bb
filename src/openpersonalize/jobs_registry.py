"""Imports every module that registers a job body, so that the runner knows them all."""
