"""Pydantic infra: cache a model's method by a readable uid, and run it as a job.

```python
class Train(pydantic.BaseModel):
    seed: int = 12
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def process(self) -> float: ...
```

See docs/pydantic-infra.md. Importing `etude` does not import this package (nor pydantic).
"""

from .errors import (
    CacheMismatchError,
    DuplicateConfigError,
    InfraConfigError,
    JobError,
    ReadOnlyError,
    SubmitError,
)
from .itemstore import register_serializer
from .jobs import Job
from .lookup import SlurmJobInfo, find_slurm_job
from .map import MapInfra
from .task import TaskInfra
from .workdir import WorkDir

__all__ = [
    "CacheMismatchError",
    "DuplicateConfigError",
    "InfraConfigError",
    "Job",
    "JobError",
    "MapInfra",
    "ReadOnlyError",
    "SlurmJobInfo",
    "SubmitError",
    "TaskInfra",
    "WorkDir",
    "find_slurm_job",
    "register_serializer",
]
