"""Typed configurations, their identities and their serialization. Pure: no I/O but imports."""

from .base import (
    Config,
    ConfigState,
    DependentMarker,
    LightweightTask,
    ResumableTask,
    Submitter,
    Task,
    current_submitter,
    is_config_class,
    register_dry_run_submitter,
    schema_of,
)
from .errors import (
    ConfigError,
    CycleError,
    MissingParameterError,
    PathGeneratorError,
    SealedError,
    SerializationError,
    UnknownParameterError,
    ValidationError,
)
from .fields import Constant, Meta, Param, PathGenerator, field, pathgenerator, tag
from .graph import check_required, collect_tags, walk
from .identity import digest, identifier, partial_identifier
from .naming import ScriptLoadStop, loading_script, type_name
from .runtime import GracefulTimeout, TaskCancelled

__all__ = [
    "Config",
    "ConfigError",
    "ConfigState",
    "Constant",
    "CycleError",
    "DependentMarker",
    "GracefulTimeout",
    "LightweightTask",
    "Meta",
    "MissingParameterError",
    "Param",
    "PathGenerator",
    "PathGeneratorError",
    "ResumableTask",
    "ScriptLoadStop",
    "SealedError",
    "SerializationError",
    "Submitter",
    "Task",
    "TaskCancelled",
    "UnknownParameterError",
    "ValidationError",
    "check_required",
    "collect_tags",
    "current_submitter",
    "digest",
    "field",
    "identifier",
    "is_config_class",
    "loading_script",
    "partial_identifier",
    "pathgenerator",
    "register_dry_run_submitter",
    "schema_of",
    "tag",
    "type_name",
    "walk",
]
