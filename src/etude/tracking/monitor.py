"""Resource monitoring of a run: CPU, memory and GPU use, reported as scalars every few seconds.

Titles are `MONITOR_TITLE` + a group (`":monitor:cpu"`, `":monitor:memory"`,
`":monitor:gpu"`), and the iteration is the whole number of seconds since `start()`. Series:

- cpu: `process_percent` (the process and all its descendants; 100 is one CPU fully busy, so
  it can exceed 100 on several cores), `system_percent` (all CPUs, 0-100);
- memory: `process_gb` (resident memory of the process and its descendants, GiB),
  `system_used_percent`;
- gpu, per GPU index i: `gpu{i}_utilization_percent`, `gpu{i}_memory_used_gb` (GiB),
  `gpu{i}_memory_percent`. Read through NVML (the `pynvml` module of `nvidia-ml-py`), else
  through `nvidia-smi` when NVML cannot be loaded or initialised. When CUDA_VISIBLE_DEVICES
  lists numeric indices, only those GPUs are reported; they are matched against NVML's
  (PCI bus) order, which is CUDA's order when CUDA_DEVICE_ORDER=PCI_BUS_ID.

psutil, pynvml and nvidia-smi are only touched once a monitor samples, so importing this
module stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psutil

__all__ = ["MONITOR_TITLE", "ResourceMonitor"]

logger = logging.getLogger(__name__)

MONITOR_TITLE = ":monitor:"

Report = Callable[[str, str, float, int], None]
Reading = tuple[str, str, float]  # (group, series, value)

_GIB = 2**30
# The CPU window of a first sample() taken without start(): percentages need two readings.
_FIRST_WINDOW_S = 0.1
# How long stop() waits for a sample or report in progress before leaving the thread behind.
_JOIN_TIMEOUT_S = 5.0
_NVIDIA_SMI_TIMEOUT_S = 10.0
_NVIDIA_SMI_QUERY = (
    "--query-gpu=index,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
)


class ResourceMonitor:
    """Calls `report(title, series, value, iteration)` for every measured value, every
    `interval` seconds, from a daemon thread, for process `pid` (this process by default) and
    its descendants; GPUs are measured only when `gpu` is true and a GPU can be read.

    A measurement or a report that fails is logged (a warning the first time for each kind,
    debug after) and the thread goes on. `stop()` returns promptly, whatever the interval.
    Raises ValueError for an `interval` that is not a positive number of seconds.
    """

    def __init__(
        self,
        report: Report,
        *,
        interval: float = 5.0,
        pid: int | None = None,
        gpu: bool = True,
    ) -> None:
        if not interval > 0:
            raise ValueError(
                f"ResourceMonitor: interval must be a positive number of seconds, got "
                f"{interval!r}; the default is 5.0"
            )
        self._report = report
        self._interval = interval
        self._pid = os.getpid() if pid is None else pid
        self._want_gpu = gpu
        self._gpu: _GpuReader | None = None
        self._gpu_probed = False
        self._processes: dict[int, psutil.Process] = {}
        self._last_cpu_times: Any = None
        self._warned: set[str] = set()
        self._sampling = threading.Lock()  # sample() may run in the thread and the caller
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0

    def start(self) -> None:
        """Start reporting, the first values one `interval` from now; a no-op when running."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._sampling:
            self._prime()
        self._stopping = threading.Event()
        self._started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopping,), name="etude-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting and release NVML; a no-op when not running. Waits at most a few
        seconds for a sample or a report in progress, then leaves it behind with a warning."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.warning(
                    "resource monitor of pid %d: a sample or report callback was still running "
                    "%s s after stop(); it is left to finish in its daemon thread",
                    self._pid,
                    _JOIN_TIMEOUT_S,
                )
                return
        with self._sampling:
            if self._gpu is not None:
                self._gpu.close()
            self._gpu, self._gpu_probed = None, False

    def sample(self) -> dict[str, float]:
        """One sample now, as {series: value}. CPU percentages cover the time since the
        previous sample (or start()); the first sample without start() blocks 0.1 s to have a
        window. Values that cannot be measured are left out (and logged)."""
        with self._sampling:
            if self._last_cpu_times is None:
                self._prime()
                time.sleep(_FIRST_WINDOW_S)
            return {series: value for _, series, value in self._measure()}

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.wait(self._interval):
            iteration = int(time.monotonic() - self._started_at)
            with self._sampling:
                readings = self._measure()
            for group, series, value in readings:
                try:
                    self._report(MONITOR_TITLE + group, series, value, iteration)
                except Exception as error:  # a broken callback must not end the monitoring
                    self._warn_once(
                        "report", "report callback failed on %s/%s: %r", group, series, error
                    )

    def _prime(self) -> None:
        """Take the first CPU readings, against which the next sample computes percentages."""
        import psutil  # here and below: imported on first use, to keep module import light

        self._last_cpu_times = psutil.cpu_times()
        try:
            self._process_tree_usage()
        except psutil.Error as error:
            self._warn_once("process", "cannot read process %d: %r", self._pid, error)

    def _measure(self) -> list[Reading]:
        readings: list[Reading] = []
        for kind, read in (
            ("process", self._read_process),
            ("system", self._read_system),
            ("gpu", self._read_gpu),
        ):
            try:
                readings.extend(read())
            except Exception as error:  # one failing source must not hide the others
                self._warn_once(kind, "measuring %s use failed: %r", kind, error)
        return readings

    def _read_process(self) -> list[Reading]:
        cpu_percent, rss = self._process_tree_usage()
        return [("cpu", "process_percent", cpu_percent), ("memory", "process_gb", rss / _GIB)]

    def _process_tree_usage(self) -> tuple[float, int]:
        """CPU percent (since the previous call) and resident bytes of the process and its
        descendants. Raises psutil.NoSuchProcess when the process itself is gone."""
        import psutil

        root = self._processes.get(self._pid) or psutil.Process(self._pid)
        members = [root, *root.children(recursive=True)]
        seen: dict[int, psutil.Process] = {}
        cpu_percent, rss = 0.0, 0
        for member in members:
            # The cached object holds the previous CPU reading; a new one (a new child, or a
            # reused pid) starts at 0 and counts from the next sample.
            cached = self._processes.get(member.pid)
            process = cached if cached is not None and cached == member else member
            try:
                with process.oneshot():
                    cpu_percent += process.cpu_percent(None)
                    rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                if process is root:
                    raise
                continue  # a child that ended, or that is not ours to read
            seen[process.pid] = process
        self._processes = seen
        return cpu_percent, rss

    def _read_system(self) -> list[Reading]:
        import psutil

        times = psutil.cpu_times()
        last, self._last_cpu_times = self._last_cpu_times, times
        memory = psutil.virtual_memory()
        return [
            ("cpu", "system_percent", _busy_percent(last, times)),
            ("memory", "system_used_percent", float(memory.percent)),
        ]

    def _read_gpu(self) -> list[Reading]:
        if not self._want_gpu:
            return []
        if not self._gpu_probed:
            self._gpu, self._gpu_probed = _open_gpu_reader(), True
        if self._gpu is None:
            return []
        return [("gpu", series, value) for series, value in self._gpu.read().items()]

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        level = logging.DEBUG if kind in self._warned else logging.WARNING
        self._warned.add(kind)
        logger.log(level, "resource monitor of pid %d: " + message, self._pid, *args)


class _GpuReader(Protocol):
    def read(self) -> dict[str, float]: ...

    def close(self) -> None: ...


class _NvmlReader:
    """GPU use through NVML, initialised by the caller and shut down by `close()`."""

    def __init__(self, nvml: ModuleType, visible: frozenset[int] | None) -> None:
        self._nvml = nvml
        self._visible = visible
        self._utilization_failed = False

    def read(self) -> dict[str, float]:
        nvml = self._nvml
        values: dict[str, float] = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            if self._visible is not None and index not in self._visible:
                continue
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            utilization = self._utilization(handle, index)
            if utilization is not None:
                values[f"gpu{index}_utilization_percent"] = utilization
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            values[f"gpu{index}_memory_used_gb"] = memory.used / _GIB
            if memory.total:
                values[f"gpu{index}_memory_percent"] = 100.0 * memory.used / memory.total
        return values

    def _utilization(self, handle: object, index: int) -> float | None:
        # Some devices (MIG instances, some vGPUs) have no utilization counter: keep memory.
        try:
            return float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except self._nvml.NVMLError as error:
            if not self._utilization_failed:
                logger.debug("NVML gives no utilization for GPU %d: %r", index, error)
            self._utilization_failed = True
            return None

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as error:
            logger.debug("NVML shutdown failed: %r", error)


class _NvidiaSmiReader:
    """GPU use parsed from `nvidia-smi --query-gpu` (values in %, MiB)."""

    def __init__(self, executable: str, visible: frozenset[int] | None) -> None:
        self._command = [executable, *_NVIDIA_SMI_QUERY]
        self._visible = visible

    def read(self) -> dict[str, float]:
        """Raises RuntimeError when nvidia-smi fails or prints something unexpected."""
        try:
            done = subprocess.run(
                self._command, capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"{self._command[0]} could not be run: {error}") from error
        if done.returncode != 0:
            raise RuntimeError(
                f"{self._command[0]} exited with status {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[:500]}"
            )
        values: dict[str, float] = {}
        for line in done.stdout.splitlines():
            if line.strip():
                values.update(self._parse(line))
        return values

    def _parse(self, line: str) -> dict[str, float]:
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4 or not fields[0].isdigit():
            raise RuntimeError(
                f"{self._command[0]}: expected 'index, utilization, used MiB, total MiB', "
                f"got {line!r}"
            )
        index = int(fields[0])
        if self._visible is not None and index not in self._visible:
            return {}
        utilization, used, total = (_number(field) for field in fields[1:])
        values: dict[str, float] = {}
        if utilization is not None:
            values[f"gpu{index}_utilization_percent"] = utilization
        if used is not None:
            values[f"gpu{index}_memory_used_gb"] = used / 1024
            if total:
                values[f"gpu{index}_memory_percent"] = 100.0 * used / total
        return values

    def close(self) -> None:
        pass


def _open_gpu_reader() -> _GpuReader | None:
    """NVML if it loads and initialises, else nvidia-smi if it is on PATH and answers, else
    None (logged at debug level: most machines have no GPU)."""
    visible = _visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
    try:
        # Imported here: only machines that monitor GPUs need it (and it ships no types).
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
    except Exception as error:  # ImportError, NVMLError (no driver), OSError (no library)
        nvml_failure = repr(error)
    else:
        return _NvmlReader(pynvml, visible)
    executable = shutil.which("nvidia-smi")
    if executable is None:
        logger.debug(
            "no GPU monitored: NVML unavailable (%s), nvidia-smi not on PATH", nvml_failure
        )
        return None
    reader = _NvidiaSmiReader(executable, visible)
    try:
        reader.read()
    except RuntimeError as error:
        logger.debug("no GPU monitored: NVML unavailable (%s), %s", nvml_failure, error)
        return None
    return reader


def _visible_devices(value: str | None) -> frozenset[int] | None:
    """The GPU indices CUDA_VISIBLE_DEVICES allows, or None for all of them. Like CUDA, stops
    at the first negative index; UUIDs and MIG names (not numeric) do not restrict."""
    if value is None:
        return None
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not all(re.fullmatch(r"-?\d+", entry) for entry in entries):
        logger.debug(
            "CUDA_VISIBLE_DEVICES=%r is not a list of indices: monitoring every GPU", value
        )
        return None
    visible: set[int] = set()
    for entry in entries:
        if int(entry) < 0:
            break
        visible.add(int(entry))
    return frozenset(visible)


def _busy_percent(before: Any, after: Any) -> float:
    """Percent of CPU time spent busy between two `psutil.cpu_times()` readings."""
    total = _cpu_total(after) - _cpu_total(before)
    idle = _cpu_idle(after) - _cpu_idle(before)
    if total <= 0:
        return 0.0
    # Rounded: sums of many float counters leave noise like 4e-10 on an idle machine.
    return round(min(100.0, max(0.0, 100.0 * (total - idle) / total)), 3)


def _cpu_total(times: Any) -> float:
    # On Linux, guest time is also counted in user and nice time: count it once.
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _cpu_idle(times: Any) -> float:
    return float(times.idle) + getattr(times, "iowait", 0.0)


def _number(text: str) -> float | None:
    """A number printed by nvidia-smi, or None for '[N/A]', '[Not Supported]' and the like."""
    try:
        return float(text)
    except ValueError:
        return None
