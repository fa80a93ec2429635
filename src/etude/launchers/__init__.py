"""Launchers start job processes: `DirectLauncher` on this machine."""

from .base import LaunchedJob, Launcher, LaunchRequest
from .direct import DirectLauncher
from .requirements import RequirementError, Requirements, parse_requirements

__all__ = [
    "DirectLauncher",
    "LaunchRequest",
    "LaunchedJob",
    "Launcher",
    "RequirementError",
    "Requirements",
    "parse_requirements",
]
