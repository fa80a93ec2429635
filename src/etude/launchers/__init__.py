"""Launchers start job processes: `DirectLauncher` on this machine, `SlurmLauncher` on a
Slurm cluster."""

from .base import LaunchedJob, Launcher, LaunchRequest
from .direct import DirectLauncher
from .requirements import RequirementError, Requirements, parse_requirements
from .slurm import SlurmLauncher

__all__ = [
    "DirectLauncher",
    "LaunchRequest",
    "LaunchedJob",
    "Launcher",
    "RequirementError",
    "Requirements",
    "SlurmLauncher",
    "parse_requirements",
]
