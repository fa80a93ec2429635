"""The errors of the pydantic infra: each says what was wrong, where, and how to fix it."""

from __future__ import annotations


class InfraConfigError(TypeError, RuntimeError):
    """A model or an infra is declared or configured in a way the infra cannot work with.

    Examples: an owner that is not a pydantic model, a decorated method with arguments, a
    field value that cannot be part of a uid, a union without a discriminator. A `TypeError`,
    and a `RuntimeError` as well, which is what exca raises for most of these.
    """


class SubmitError(OSError):
    """A job could not be submitted (sbatch refused it, or no Slurm controller answered).

    Nothing is recorded in the job's folder: it is not a result, and the next call submits
    the job again.
    """


class DuplicateConfigError(InfraConfigError, ValueError):
    """`job_array()` got two objects with the same uid (a `ValueError`, as in exca)."""


class CacheMismatchError(RuntimeError):
    """The cache folder of a uid holds results of a different configuration.

    This happens when a default value of the class changed after the results were computed:
    the uid (built from non-default values) is the same, the computation is not.
    """


class ReadOnlyError(LookupError, RuntimeError):
    """`mode="read-only"` and the result is not in the cache (a `RuntimeError` as well, as in
    exca)."""


class JobError(RuntimeError):
    """A computation failed (now, in a job process, or in an earlier run kept in the cache).

    The message holds the original traceback; `error_type` names the original exception type
    and `folder` the job folder (where `failed.json` and the logs are).
    """

    def __init__(self, message: str, *, error_type: str = "", folder: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.folder = folder
