"""Launchers start job processes: `DirectLauncher` on this machine."""

from .base import LaunchedJob, Launcher, LaunchRequest
from .direct import DirectLauncher

__all__ = ["DirectLauncher", "LaunchRequest", "LaunchedJob", "Launcher"]
