"""Launchers start job processes: `DirectLauncher` on this machine, `SlurmLauncher` on a
Slurm cluster."""

from .base import LaunchedJob, Launcher, LaunchRequest
from .direct import DirectLauncher
from .finder import LaunchersFileError, NoLauncherFits, find_launcher, load_launchers
from .requirements import RequirementError, Requirements, parse_requirements
from .slurm import SlurmLauncher

__all__ = [
    "DirectLauncher",
    "LaunchRequest",
    "LaunchedJob",
    "Launcher",
    "LaunchersFileError",
    "NoLauncherFits",
    "RequirementError",
    "Requirements",
    "SlurmLauncher",
    "find_launcher",
    "load_launchers",
    "parse_requirements",
]
