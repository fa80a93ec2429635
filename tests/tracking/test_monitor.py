"""ResourceMonitor with real psutil on this machine. This machine has no GPU, so the GPU paths
run against a fake `nvidia-smi` script and a fake `pynvml` module."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from etude.tracking.monitor import MONITOR_TITLE, ResourceMonitor

CPU_MEMORY_SERIES = {"process_percent", "system_percent", "process_gb", "system_used_percent"}

FAKE_NVIDIA_SMI = """\
#!/bin/sh
if [ "$1" != "--query-gpu=index,utilization.gpu,memory.used,memory.total" ] \\
    || [ "$2" != "--format=csv,noheader,nounits" ]; then
    echo "fake nvidia-smi: unexpected arguments: $*" >&2
    exit 2
fi
echo "0, 45, 1024, 81920"
echo "1, [N/A], 2048, 81920"
echo "2, 100, 40960, 81920"
"""


class Reports:
    """A report callback that records its calls and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, int]] = []
        self._changed = threading.Condition()

    def __call__(self, title: str, series: str, value: float, iteration: int) -> None:
        with self._changed:
            self.calls.append((title, series, value, iteration))
            self._changed.notify_all()

    def wait_for(
        self, condition: Callable[[list[tuple[str, str, float, int]]], bool], timeout: float = 20
    ) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.calls), timeout):
                raise AssertionError(f"condition not met within {timeout} s; got {self.calls}")


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import pynvml` fail, as on a machine without the NVIDIA driver."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_nvml: None) -> Path:
    """A fake nvidia-smi first on PATH, reporting three GPUs (this machine has none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(FAKE_NVIDIA_SMI)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return script


class FakeNvml(types.ModuleType):
    """A fake `pynvml` (there is no GPU here): two devices, the second without utilization."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("pynvml")
        self.initialised = 0

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        if handle == 1:
            raise self.NVMLError("Not Supported")
        return types.SimpleNamespace(gpu=37, memory=12)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        used = [3 * 2**30, 2**29][handle]
        return types.SimpleNamespace(used=used, total=12 * 2**30, free=12 * 2**30 - used)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    module = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield module


def test_import_loads_neither_psutil_nor_pynvml() -> None:
    code = (
        "import sys, etude.tracking.monitor\n"
        "print(sorted(m for m in ('psutil', 'pynvml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sample_measures_cpu_and_memory_in_sane_ranges(no_nvml: None) -> None:
    values = ResourceMonitor(Reports()).sample()
    assert set(values) == CPU_MEMORY_SERIES  # and no gpu series: this machine has no GPU
    assert 0 <= values["process_percent"] <= 100 * (os.cpu_count() or 1)
    assert 0 <= values["system_percent"] <= 100
    assert 0 < values["system_used_percent"] <= 100
    own_gb = psutil.Process().memory_info().rss / 2**30
    assert 0.5 * own_gb < values["process_gb"] < 2 * own_gb


def test_process_memory_includes_children(no_nvml: None) -> None:
    """A child holding 200 MiB shows up in process_gb."""
    code = "import sys; block = b'x' * (200 * 2**20); print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        values = ResourceMonitor(Reports(), gpu=False).sample()
        own_gb = psutil.Process().memory_info().rss / 2**30
        assert values["process_gb"] - own_gb > 0.18
    finally:
        child.kill()
        child.wait()


def test_thread_reports_every_interval_with_seconds_as_iteration(no_nvml: None) -> None:
    reports = Reports()
    monitor = ResourceMonitor(reports, interval=0.05)
    started = time.monotonic()
    monitor.start()
    try:
        reports.wait_for(lambda calls: any(iteration >= 1 for *_, iteration in calls))
    finally:
        monitor.stop()
    elapsed = time.monotonic() - started
    iterations = [iteration for *_, iteration in reports.calls]
    assert iterations == sorted(iterations)
    assert iterations[-1] <= elapsed
    assert len(reports.calls) >= 2 * len(CPU_MEMORY_SERIES)  # several samples
    by_title = {(title, series) for title, series, _, _ in reports.calls}
    assert by_title == {
        (":monitor:cpu", "process_percent"),
        (":monitor:cpu", "system_percent"),
        (":monitor:memory", "process_gb"),
        (":monitor:memory", "system_used_percent"),
    }
    assert all(title.startswith(MONITOR_TITLE) for title, *_ in reports.calls)


def test_stop_returns_promptly_whatever_the_interval(no_nvml: None) -> None:
    reports = Reports()
    monitor = ResourceMonitor(reports, interval=60)
    monitor.stop()  # not started: nothing to do
    monitor.start()
    monitor.start()
    started = time.monotonic()
    monitor.stop()
    monitor.stop()
    assert time.monotonic() - started < 20  # not the 60 s interval
    assert not [t for t in threading.enumerate() if t.name == "etude-monitor" and t.is_alive()]
    assert reports.calls == []


def test_failing_report_callback_is_logged_once_and_monitoring_goes_on(
    no_nvml: None, caplog: pytest.LogCaptureFixture
) -> None:
    reports = Reports()

    def report(title: str, series: str, value: float, iteration: int) -> None:
        if series == "process_percent":
            raise RuntimeError("store unavailable")
        reports(title, series, value, iteration)

    monitor = ResourceMonitor(report, interval=0.05)
    with caplog.at_level(logging.DEBUG, logger="etude.tracking.monitor"):
        monitor.start()
        try:
            reports.wait_for(lambda calls: sum(s == "system_percent" for _, s, _, _ in calls) >= 3)
        finally:
            monitor.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "report callback failed" in warnings[0].getMessage()
    assert "store unavailable" in warnings[0].getMessage()


def test_process_that_is_gone_is_logged_once_and_system_values_remain(
    no_nvml: None, caplog: pytest.LogCaptureFixture
) -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    monitor = ResourceMonitor(Reports(), pid=int(ended.stdout))
    with caplog.at_level(logging.WARNING, logger="etude.tracking.monitor"):
        first, second = monitor.sample(), monitor.sample()
    assert set(first) == set(second) == {"system_percent", "system_used_percent"}
    assert len(caplog.records) == 1
    assert f"pid {int(ended.stdout)}" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("visible", "indices"),
    [
        pytest.param(None, [0, 1, 2], id="unset"),
        pytest.param("2,0", [0, 2], id="two-of-three"),
        pytest.param(" 1 ", [1], id="spaces"),
        pytest.param("1,-1,2", [1], id="stops-at-negative"),
        pytest.param("", [], id="empty-hides-all"),
        pytest.param("GPU-8f6a1c2e-0000", [0, 1, 2], id="uuid-does-not-restrict"),
    ],
)
def test_nvidia_smi_fallback_reads_each_visible_gpu(
    fake_nvidia_smi: Path,
    monkeypatch: pytest.MonkeyPatch,
    visible: str | None,
    indices: list[int],
) -> None:
    """NVML cannot load (forced), so the fake nvidia-smi is parsed (there is no GPU here)."""
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    values = ResourceMonitor(Reports()).sample()
    expected = {
        "gpu0_utilization_percent": 45.0,
        "gpu0_memory_used_gb": 1.0,
        "gpu0_memory_percent": 1.25,
        "gpu1_memory_used_gb": 2.0,  # utilization [N/A]: left out
        "gpu1_memory_percent": 2.5,
        "gpu2_utilization_percent": 100.0,
        "gpu2_memory_used_gb": 40.0,
        "gpu2_memory_percent": 50.0,
    }
    gpu_values = {k: v for k, v in values.items() if k.startswith("gpu")}
    assert gpu_values == {k: v for k, v in expected.items() if int(k[3]) in indices}
    assert set(values) - set(gpu_values) == CPU_MEMORY_SERIES


def test_failing_nvidia_smi_means_no_gpu_series(
    fake_nvidia_smi: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A driver-less container often has nvidia-smi that fails: no GPU, no warning."""
    fake_nvidia_smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    with caplog.at_level(logging.DEBUG, logger="etude.tracking.monitor"):
        monitor = ResourceMonitor(Reports())
        values = monitor.sample() | monitor.sample()
    assert set(values) == CPU_MEMORY_SERIES
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "NVIDIA-SMI has failed" in caplog.records[0].getMessage()


def test_no_gpu_at_all_is_a_single_debug_line(
    no_nvml: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi there
    with caplog.at_level(logging.DEBUG, logger="etude.tracking.monitor"):
        monitor = ResourceMonitor(Reports())
        values = monitor.sample() | monitor.sample()
    assert set(values) == CPU_MEMORY_SERIES
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.DEBUG
    assert "no GPU monitored" in caplog.records[0].getMessage()


def test_gpu_false_measures_no_gpu(fake_nvidia_smi: Path) -> None:
    assert set(ResourceMonitor(Reports(), gpu=False).sample()) == CPU_MEMORY_SERIES


def test_nvml_values_reach_the_gpu_title_and_nvml_is_shut_down(fake_nvml: FakeNvml) -> None:
    """With the fake pynvml (there is no GPU here): bytes become GiB and percents of total."""
    reports = Reports()
    monitor = ResourceMonitor(reports, interval=0.05)
    monitor.start()
    try:
        reports.wait_for(lambda calls: sum(t == ":monitor:gpu" for t, *_ in calls) >= 3)
        assert fake_nvml.initialised == 1
    finally:
        monitor.stop()
    assert fake_nvml.initialised == 0
    gpu = {series: value for title, series, value, _ in reports.calls if title == ":monitor:gpu"}
    assert gpu == {
        "gpu0_utilization_percent": 37.0,
        "gpu0_memory_used_gb": 3.0,
        "gpu0_memory_percent": 25.0,
        "gpu1_memory_used_gb": 0.5,  # no utilization counter on this device: left out
        "gpu1_memory_percent": pytest.approx(100 / 24),
    }


def test_nvml_respects_cuda_visible_devices(
    fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    values = ResourceMonitor(Reports()).sample()
    assert {k for k in values if k.startswith("gpu")} == {
        "gpu1_memory_used_gb",
        "gpu1_memory_percent",
    }


@pytest.mark.parametrize("interval", [0, -1.0, math.nan])
def test_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be a positive number"):
        ResourceMonitor(Reports(), interval=interval)
