"""The `slurm_cluster` fixture: a real single-node Slurm cluster, shared by every test session.

The cluster is started on first use (installing the Debian packages if needed, which needs
root) and is left running when the session ends: other xdist workers, or the next test run,
reuse it. Stop it with `make slurm-down`. Its config is DIR/slurm.conf, with
/etc/slurm/slurm.conf a symlink to it, and SLURM_CONF is also set in os.environ for the
session, so sbatch/squeue run as plain subprocesses (by tests or by etude) reach it.
DIR is $ETUDE_SLURM_DIR, else /tmp/etude-slurm.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from slurm_cluster import DEFAULT_DIR, Cluster, ClusterUnavailable, start


def _skip_loudly(request: pytest.FixtureRequest, reason: str) -> NoReturn:
    """Skip, and say so on stderr (past pytest's capture) and in the warnings summary."""
    message = f"SLURM TESTS SKIPPED: {reason}"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{'!' * 72}\n{message}\n{'!' * 72}", file=sys.stderr, flush=True)
    warnings.warn(message, pytest.PytestWarning, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        _skip_loudly(
            request, "the Slurm test cluster needs root (it installs packages, runs daemons)"
        )
    try:
        cluster = start(Path(os.environ.get("ETUDE_SLURM_DIR", DEFAULT_DIR)))
    except ClusterUnavailable as error:
        _skip_loudly(request, str(error))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in cluster.env.items():
            patch.setenv(name, value)
        yield cluster
