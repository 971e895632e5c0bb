"""Batch inference and batch segment jobs: JSON Lines in, JSON Lines out, streamed.

``io`` lists the input objects, reads them in chunks of lines and writes each output under a
temporary name that is published only when the whole job succeeded. ``inference`` and
``segment`` are the job bodies; ``themes`` names groups of similar items.
"""
