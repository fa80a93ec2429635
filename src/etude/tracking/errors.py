"""Errors of run tracking. Each message says what was wrong, where (run, title/series, name or
path) and how to fix it."""

from __future__ import annotations


class TrackingError(Exception):
    """Base of every error raised by `etude.tracking`."""


class RunStateError(TrackingError, RuntimeError):
    """The run's state forbids the call: writing to a closed run, editing a published one,
    enqueuing a run that is not a draft."""


class ReportError(TrackingError, ValueError):
    """A reported value of the wrong kind: a scalar that is not a number, a table that is not
    tabular, an image that is not an image."""


class ArtifactError(TrackingError, ValueError):
    """An artifact or model that cannot be stored or fetched: a bad name, a missing file, an
    object that cannot be serialized, a blob missing from the workspace."""


class RunNotFoundError(TrackingError, LookupError):
    """No run matches an id, or a project and name."""
