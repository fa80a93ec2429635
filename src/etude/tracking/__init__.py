"""Run tracking: two lines in any script record its parameters, console, scalars, plots,
artifacts and models, searchable and comparable (see docs/tracking.md).

```python
from etude.tracking import Run

run = Run.init(project="vision/mnist", name="baseline")
params = run.connect({"lr": 0.1, "epochs": 3})
run.logger.report_scalar("loss", "train", value=0.3, iteration=10)
```

Importing this package is light (no database, no numpy); it hooks argparse so that
`parse_args()` results are recorded even when parsed before `Run.init()`.
"""

from __future__ import annotations

from typing import Any

from .errors import ArtifactError, ReportError, RunNotFoundError, RunStateError, TrackingError
from .run import RUN_TYPES, Run


def runs_dataframe(**filters: Any) -> Any:
    """The runs matching `Run.query`'s filters (and `workspace=`) as a pandas DataFrame:
    parameters as `Section/key` columns, the last value of each metric as
    `metrics/TITLE/SERIES`. Needs pandas."""
    from .query import runs_dataframe as frame

    return frame(**filters)


def _install_argparse_hook() -> None:
    from .bridge import Sink
    from .frameworks import install_argparse_hook

    def current() -> Any:
        run = Run.current()
        return None if run is None or run._live is None else Sink(run)

    install_argparse_hook(current)


_install_argparse_hook()

__all__ = [
    "RUN_TYPES",
    "ArtifactError",
    "ReportError",
    "Run",
    "RunNotFoundError",
    "RunStateError",
    "TrackingError",
    "runs_dataframe",
]
