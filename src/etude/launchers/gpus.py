"""The GPUs of this machine, and which job holds which, for `DirectLauncher`.

GPUs are found through NVML (`nvidia-ml-py`), else `nvidia-smi`; a machine with neither has
none. Indices are those of `nvidia-smi` (PCI bus order): jobs get `CUDA_DEVICE_ORDER=PCI_BUS_ID`
with their `CUDA_VISIBLE_DEVICES`, so that CUDA numbers the devices the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .requirements import RequirementError, Requirements, format_size, parse_size

logger = logging.getLogger("etude.launchers")

_MIB = 1024**2


@dataclass(frozen=True)
class GPU:
    index: int
    memory: int | None = None  # bytes; None when not known


def parse_gpus(gpus: Sequence[int] | Mapping[int, int | str] | None) -> list[GPU] | None:
    """`DirectLauncher(gpus=...)` checked: indices, or indices with their memory; raises
    `ValueError` saying what is wrong."""
    if gpus is None:
        return None
    example = "gpus=[0, 1] or gpus={0: '24G', 1: '24G'}"
    if isinstance(gpus, str | bytes) or not isinstance(gpus, Sequence | Mapping):
        raise ValueError(f"DirectLauncher(gpus={gpus!r}): expected {example}.")
    items = gpus.items() if isinstance(gpus, Mapping) else ((i, None) for i in gpus)
    stated = []
    for index, memory in items:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(
                f"DirectLauncher(gpus=...): GPU index {index!r} is not a whole number >= 0; "
                f"expected {example}."
            )
        try:
            size = parse_size(memory) if isinstance(memory, str) else memory
        except RequirementError as exc:
            raise ValueError(f"DirectLauncher(gpus=...): GPU {index}: {exc}") from exc
        stated.append(GPU(index, size))
    if len({gpu.index for gpu in stated}) != len(stated):
        raise ValueError(f"DirectLauncher(gpus={gpus!r}): an index is given twice.")
    return stated


def detect_gpus() -> list[GPU]:
    """The GPUs of this machine: NVML first, then `nvidia-smi`; [] when neither answers.

    When the environment already sets `CUDA_VISIBLE_DEVICES` to indices (a Slurm allocation,
    a shared workstation), only those GPUs are returned.
    """
    gpus = _from_nvml()
    if gpus is None:
        gpus = _from_nvidia_smi()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus and visible is not None:
        wanted = [part.strip() for part in visible.split(",") if part.strip()]
        if all(part.isdigit() for part in wanted):
            gpus = [gpu for gpu in gpus if str(gpu.index) in wanted]
    return gpus or []


def _from_nvml() -> list[GPU] | None:
    try:
        import pynvml  # type: ignore[import-untyped]  # lazily: most jobs need no GPU
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver: this machine has no usable NVIDIA GPU
        logger.debug("NVML unavailable (%s); trying nvidia-smi", exc)
        return None
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            found.append(GPU(index, int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)))
        return found
    finally:
        pynvml.nvmlShutdown()


def _from_nvidia_smi() -> list[GPU] | None:
    program = shutil.which("nvidia-smi")
    if program is None:
        return None
    query = [program, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"]
    try:
        result = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("etude: %s failed (%s); assuming no GPUs", program, exc)
        return None
    found = []
    for line in result.stdout.splitlines():
        index, _, memory = (part.strip() for part in line.partition(","))
        if not index.isdigit():
            logger.warning("etude: cannot read nvidia-smi line %r; skipped", line)
            continue
        found.append(GPU(int(index), int(float(memory)) * _MIB if memory else None))
    return found


class GPUPool:
    """Which job holds which GPU. Thread-safe.

    A job holds its GPUs alone unless its requirement says `shared=yes`; shared jobs may be
    placed together on a GPU while their stated memory fits in the GPU's.
    """

    def __init__(self, gpus: list[GPU]) -> None:
        self.gpus = {gpu.index: gpu for gpu in gpus}
        self._alone: dict[int, str] = {}  # GPU index -> the job holding it alone
        self._shared: dict[int, dict[str, int]] = {}  # GPU index -> {job: stated memory}
        self._held: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def why_never(self, needs: Requirements) -> str | None:
        """Why a job with these needs can never run here (too few GPUs), or None."""
        usable = self._usable(needs)
        if len(usable) >= needs.gpus:
            return None
        memory = f" with {format_size(needs.gpu_memory)}" if needs.gpu_memory else ""
        return (
            f"the job needs {needs.gpus} GPU(s){memory}; this launcher has {len(usable)} such "
            f"GPU(s) of {self.describe()}. Ask for less, or give the launcher more GPUs "
            "(DirectLauncher(gpus=...), launchers.yaml options.gpus)."
        )

    def describe(self) -> str:
        if not self.gpus:
            return "none"
        return ", ".join(
            f"{i}" + (f" ({format_size(g.memory)})" if g.memory else "")
            for i, g in sorted(self.gpus.items())
        )

    def reserve(self, job: str, needs: Requirements) -> tuple[int, ...] | None:
        """Set GPUs aside for `job` (the same ones when asked again); None: not enough free."""
        with self._lock:
            if job in self._held:
                return self._held[job]
            free = [
                gpu for gpu in self._usable(needs)
                if gpu.index not in self._alone
                and (needs.gpu_shared or gpu.index not in self._shared)
                and (not needs.gpu_shared or self._room(gpu, needs.gpu_memory))
            ]
            if len(free) < needs.gpus:
                return None
            # shared jobs go where fewest jobs are, so that they share only when they must
            free.sort(key=lambda gpu: (len(self._shared.get(gpu.index, ())), gpu.index))
            chosen = tuple(sorted(gpu.index for gpu in free[: needs.gpus]))
            for index in chosen:
                if needs.gpu_shared:
                    self._shared.setdefault(index, {})[job] = needs.gpu_memory or 0
                else:
                    self._alone[index] = job
            self._held[job] = chosen
            return chosen

    def release(self, job: str) -> None:
        """Free the GPUs of `job` (nothing if it holds none)."""
        with self._lock:
            for index in self._held.pop(job, ()):
                if self._alone.get(index) == job:
                    del self._alone[index]
                users = self._shared.get(index)
                if users is not None:
                    users.pop(job, None)
                    if not users:
                        del self._shared[index]

    def _usable(self, needs: Requirements) -> list[GPU]:
        """GPUs big enough for the job (a GPU of unknown memory is taken to be)."""
        wanted = needs.gpu_memory
        return [
            gpu for gpu in self.gpus.values()
            if wanted is None or gpu.memory is None or gpu.memory >= wanted
        ]

    def _room(self, gpu: GPU, wanted: int | None) -> bool:
        if gpu.memory is None or not wanted:
            return True
        used = sum(self._shared.get(gpu.index, {}).values())
        return gpu.memory - used >= wanted
