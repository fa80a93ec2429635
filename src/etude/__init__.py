"""etude: typed experiment configurations with stable identities, and a scheduler that never
recomputes what exists.

Public names live here; everything else may move between versions.
"""

from .config import (
    Config,
    ConfigError,
    Constant,
    DependentMarker,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    Task,
    field,
    identifier,
    pathgenerator,
    tag,
)
from .scheduler import Experiment, ExperimentFailed, SubmitHook, experiment
from .workspace import cache

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Constant",
    "DependentMarker",
    "Experiment",
    "ExperimentFailed",
    "LightweightTask",
    "Meta",
    "Param",
    "PathGenerator",
    "SubmitHook",
    "Task",
    "cache",
    "experiment",
    "field",
    "identifier",
    "pathgenerator",
    "tag",
]
