"""`experiment()`, kept apart from the scheduler so that job processes never import it.

A job process loads the experiment script to find its classes; the script calls `experiment()`,
which stops the loading right there (see `etude.config.naming.ScriptLoadStop`) before the
scheduler modules are imported. That keeps job start-up close to a bare interpreter's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..config import ScriptLoadStop, loading_script, register_dry_run_submitter

if TYPE_CHECKING:
    from ..launchers import Launcher
    from .experiment_context import DetachedDryRun, Experiment


def experiment(
    workdir: str | os.PathLike[str],
    name: str,
    *,
    launcher: Launcher | None = None,
    dry_run: bool | None = None,
) -> Experiment:
    """Open an experiment named `name` in the workspace folder `workdir`.

    Inside `with experiment(...) as xp:`, `task.submit()` registers jobs; jobs start as soon
    as their dependencies are done. Leaving the block waits for every job and raises
    `ExperimentFailed` if one failed. With `dry_run=True` (or `ETUDE_DRY_RUN=1` in the
    environment) nothing runs: the jobs that would run are listed with the reason.
    """
    if loading_script():
        raise ScriptLoadStop()
    from .experiment_context import Experiment  # lazily: see the module docstring

    return Experiment(workdir, name, launcher=launcher, dry_run=dry_run)


def _detached_dry_run(workdir: str | os.PathLike[str]) -> DetachedDryRun:
    from .experiment_context import DetachedDryRun  # lazily: see the module docstring

    return DetachedDryRun(workdir)


register_dry_run_submitter(_detached_dry_run)
