"""Errors raised while building, validating and serializing configurations.

Every message says what was wrong, where (the parameter path) and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(TypeError):
    """Base class of configuration errors: a value does not fit its declaration."""


class ValidationError(ConfigError):
    """A value does not match the declared type of its parameter."""


class UnknownParameterError(ConfigError, AttributeError):
    """A name that the configuration class does not declare."""


class MissingParameterError(ConfigError):
    """A required parameter has no value when the configuration is submitted."""


class SealedError(ConfigError):
    """A value was set on a configuration after it was submitted."""


class SerializationError(ConfigError):
    """A value cannot be written to the job's parameters or rebuilt in the job process."""


class CycleError(ConfigError):
    """A configuration contains itself (directly or through other configurations)."""


class PathGeneratorError(ConfigError, AttributeError):
    """A generated path was read before the task owning it was submitted."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest candidate, or the list of valid names."""
    names = sorted(candidates)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f" Did you mean {close[0]!r}?"
    if names:
        return f" Valid parameters: {', '.join(names)}."
    return " This class declares no parameters."
