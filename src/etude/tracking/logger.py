"""`run.logger`: what a run reports — scalars, single values, text, tables, plots, images,
histograms and media.

Scalars are buffered in memory and written by the run's background thread (see `recorder`);
the other reports write their payload (PNG, JSON, a copied file) under the run's `files/` at
once and buffer a one-line event. Images and media keep the last `debug_samples` reports of
each title/series (the older files are overwritten in turn, as a ring).
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ReportError, RunStateError
from .points import SeriesBuffer
from .recorder import Recorder

_now = time.time


class Logger:
    """Reports of one run. Every method raises RunStateError once the run is closed, and
    ReportError for a value of the wrong kind (saying which title/series and what to pass)."""

    def __init__(
        self,
        recorder: Recorder,
        debug_samples: int,
        offset: int = 0,
        check_open: Callable[[], None] | None = None,
    ) -> None:
        self._recorder = recorder
        self._lock = recorder.lock
        self._series = recorder.series
        self._debug_samples = max(1, int(debug_samples))
        self._offset = offset
        self._check_open = check_open
        self._counters: dict[tuple[str, str, str], int] = {}
        self.closed = False

    # -- scalars ------------------------------------------------------------------------------
    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        """One point of the series `title`/`series` (value: a real number; NaN and infinities
        are kept). Buffered; written within `flush_seconds`."""
        if self.closed:
            self._closed()
        key = (title, series)
        with self._lock:
            buffer = self._recorder.series.get(key)
            if buffer is None:
                buffer = self._new_series(key)
            try:
                buffer.values.append(value)
            except TypeError:
                raise _not_a_number(title, series, value) from None
            try:
                buffer.iterations.append(iteration + self._offset)
            except (TypeError, OverflowError):
                buffer.values.pop()
                raise _bad_iteration(title, series, iteration) from None
            now = _now()
            buffer.times.append(now)
        if now > self._recorder.due:  # the writer thread is starved (a busy machine): write now
            self._recorder.catch_up_here()

    def _new_series(self, key: tuple[str, str]) -> SeriesBuffer:
        for part, what in zip(key, ("title", "series"), strict=True):
            if not isinstance(part, str) or not part:
                raise ReportError(
                    f"report_scalar: {what} must be a non-empty string, got "
                    f"{part!r}. Pass e.g. report_scalar('loss', 'train', ...)"
                )
        buffer = self._recorder.series[key] = SeriesBuffer()
        return buffer

    def report_single_value(self, name: str, value: float) -> None:
        """A value that is not a series (final accuracy): the series `name`/`name`, which
        queries read as `metrics.NAME`."""
        self.report_scalar(name, name, value, 0)

    # -- text and events ----------------------------------------------------------------------
    def report_text(self, text: str, level: str = "info") -> None:
        """A line of text in the run's log (kept with the events, not in the console)."""
        if not isinstance(text, str):
            raise ReportError(
                f"report_text: expected a string, got {type(text).__name__}. "
                "Format the value first: report_text(str(value))."
            )
        self._event({"kind": "text", "text": text, "level": level})

    def report_table(
        self,
        title: str,
        series: str,
        iteration: int = 0,
        table: Any = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        """A table: a pandas DataFrame, a list of dicts (columns from their keys), or a list
        of rows (lists or tuples; `columns` names them)."""
        data = _tabular(title, series, table, columns)
        self._payload(
            "table",
            title,
            series,
            iteration,
            _json_bytes(data),
            "json",
            rows=len(data["rows"]),
            columns=data["columns"][:50],
        )

    def report_plotly(
        self, title: str, series: str, iteration: int = 0, figure: Any = None
    ) -> None:
        """A plotly figure: a dict with `data` (and `layout`), or a plotly Figure object."""
        if hasattr(figure, "to_plotly_json"):
            figure = figure.to_plotly_json()
        if not isinstance(figure, dict) or "data" not in figure:
            raise ReportError(
                f"report_plotly({title!r}, {series!r}): expected a plotly figure "
                f"or a dict with 'data', got {type(figure).__name__}."
            )
        self._payload("plotly", title, series, iteration, _json_bytes(figure), "json")

    def report_matplotlib_figure(
        self, title: str, series: str, iteration: int = 0, figure: Any = None
    ) -> None:
        """A matplotlib figure (or the pyplot module: its current figure), kept as PNG."""
        if hasattr(figure, "gcf"):
            figure = figure.gcf()
        if not hasattr(figure, "savefig"):
            raise ReportError(
                f"report_matplotlib_figure({title!r}, {series!r}): expected a "
                f"matplotlib Figure, got {type(figure).__name__}."
            )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        self._payload("matplotlib", title, series, iteration, buffer.getvalue(), "png")

    def report_image(
        self,
        title: str,
        series: str,
        iteration: int = 0,
        image: Any = None,
        local_path: str | None = None,
    ) -> None:
        """An image (debug sample): a PIL image, a numpy array (HxW, HxWx3 or HxWx4; uint8, or
        floats in 0..1), or a file at `local_path`."""
        if local_path is not None:
            self._copied("image", title, series, iteration, local_path)
            return
        data, width, height = _png(title, series, image)
        self._payload(
            "image", title, series, iteration, data, "png", sample=True, width=width, height=height
        )

    def report_media(
        self, title: str, series: str, iteration: int = 0, local_path: str | None = None
    ) -> None:
        """A media file (audio, video, HTML) kept as a debug sample."""
        if local_path is None:
            raise ReportError(
                f"report_media({title!r}, {series!r}): pass local_path= the "
                "file to keep (audio, video or HTML)."
            )
        self._copied("media", title, series, iteration, local_path)

    def report_histogram(
        self, title: str, series: str, iteration: int = 0, values: Any = None, bins: int = 30
    ) -> None:
        """A histogram of `values` (numbers), kept as counts and bin edges."""
        numbers = _numbers(title, series, values)
        counts, edges = _histogram(numbers, bins)
        self._payload(
            "histogram",
            title,
            series,
            iteration,
            _json_bytes({"counts": counts, "edges": edges}),
            "json",
            count=len(numbers),
        )

    # -- plumbing -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what is buffered now."""
        self._recorder.flush(status=True)

    def _closed(self) -> None:
        raise RunStateError(
            "this run is closed: nothing more can be reported. Start a new "
            "one with Run.init(), or continue it with Run.init(..., "
            "continue_last=True)."
        )

    def _event(self, event: dict[str, Any]) -> None:
        if self.closed:
            self._closed()
        if self._check_open is not None:
            self._check_open()
        event["time"] = _now()
        with self._lock:
            self._recorder.events.append(event)

    def _payload(
        self,
        kind: str,
        title: str,
        series: str,
        iteration: int,
        data: bytes,
        suffix: str,
        sample: bool = False,
        **extra: Any,
    ) -> None:
        if self.closed:
            self._closed()
        name = self._file_name(kind, title, series, suffix, sample)
        path = self._recorder.folder.files / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._event(
            {
                "kind": kind,
                "title": title,
                "series": series,
                "iteration": int(iteration) + self._offset,
                "file": f"files/{name}",
                "size": len(data),
                **extra,
            }
        )

    def _copied(self, kind: str, title: str, series: str, iteration: int, local_path: str) -> None:
        if self.closed:
            self._closed()
        source = Path(local_path)
        if not source.is_file():
            raise ReportError(
                f"{kind} {title!r}/{series!r}: {source} is not a file. Pass the "
                "path of an existing file as local_path=."
            )
        name = self._file_name(kind, title, series, source.suffix.lstrip(".") or "bin", True)
        target = self._recorder.folder.files / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        self._event(
            {
                "kind": kind,
                "title": title,
                "series": series,
                "iteration": int(iteration) + self._offset,
                "file": f"files/{name}",
                "size": target.stat().st_size,
                "filename": source.name,
            }
        )

    def _file_name(self, kind: str, title: str, series: str, suffix: str, sample: bool) -> str:
        for part, what in ((title, "title"), (series, "series")):
            if not isinstance(part, str) or not part:
                raise ReportError(f"{kind}: {what} must be a non-empty string, got {part!r}.")
        key = (kind, title, series)
        with self._lock:
            count = self._counters.get(key, 0)
            self._counters[key] = count + 1
        digest = hashlib.sha1(f"{title}\0{series}".encode()).hexdigest()[:12]
        slot = count % self._debug_samples if sample else count
        return f"{kind}-{digest}-{slot}.{suffix}"


def _not_a_number(title: str, series: str, value: Any) -> ReportError:
    return ReportError(
        f"report_scalar({title!r}, {series!r}): value must be a real number, "
        f"got {value!r} ({type(value).__name__}). Pass float(x), or report "
        "text with report_text()."
    )


def _bad_iteration(title: str, series: str, iteration: Any) -> ReportError:
    return ReportError(
        f"report_scalar({title!r}, {series!r}): iteration must be an integer, "
        f"got {iteration!r} ({type(iteration).__name__})."
    )


def _json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value, default=_json_default, allow_nan=True).encode()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _tabular(title: str, series: str, table: Any, columns: Sequence[str] | None) -> dict[str, Any]:
    where = f"report_table({title!r}, {series!r})"
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a pandas DataFrame
        frame = table.reset_index() if _named_index(table) else table
        return {
            "columns": [str(c) for c in frame.columns],
            "rows": [[_cell(v) for v in row] for row in frame.itertuples(index=False)],
        }
    if isinstance(table, (list, tuple)) and table and all(isinstance(r, dict) for r in table):
        names = list(dict.fromkeys(key for row in table for key in row))
        return {
            "columns": [str(c) for c in names],
            "rows": [[_cell(row.get(key)) for key in names] for row in table],
        }
    if isinstance(table, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in table):
        width = max((len(row) for row in table), default=0)
        if columns is not None and len(columns) != width:
            raise ReportError(f"{where}: {len(columns)} column names for rows of {width} values.")
        names = list(columns) if columns is not None else [str(i) for i in range(width)]
        return {
            "columns": names,
            "rows": [[_cell(v) for v in row] + [None] * (width - len(row)) for row in table],
        }
    raise ReportError(
        f"{where}: expected a pandas DataFrame, a list of dicts or a list of "
        f"rows, got {type(table).__name__}."
    )


def _named_index(frame: Any) -> bool:
    return any(name is not None for name in getattr(frame.index, "names", []))


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if hasattr(value, "item"):
        return _cell(value.item())
    return str(value)


def _png(title: str, series: str, image: Any) -> tuple[bytes, int, int]:
    where = f"report_image({title!r}, {series!r})"
    if image is None:
        raise ReportError(f"{where}: pass image= (PIL image or numpy array) or local_path=.")
    try:
        from PIL import Image  # lazily: only runs that report images need pillow
    except ImportError:
        raise ReportError(f"{where}: reporting images needs pillow (pip install pillow)") from None
    if not isinstance(image, Image.Image):
        image = Image.fromarray(_image_array(where, image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), image.width, image.height


def _image_array(where: str, image: Any) -> Any:
    import numpy as np

    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ReportError(
            f"{where}: expected an array of shape HxW, HxWx3 or HxWx4, got {array.shape}."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)
    if array.dtype != np.uint8:
        return np.clip(array, 0, 255).astype(np.uint8)
    return array


def _numbers(title: str, series: str, values: Any) -> list[float]:
    try:
        flat = values.ravel().tolist() if hasattr(values, "ravel") else list(values)
        return [float(value) for value in flat]
    except (TypeError, ValueError):
        raise ReportError(
            f"report_histogram({title!r}, {series!r}): values must be numbers "
            f"(a list or an array), got {type(values).__name__}."
        ) from None


def _histogram(values: list[float], bins: int) -> tuple[list[int], list[float]]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [], []
    low, high = min(finite), max(finite)
    if high == low:
        return [len(finite)], [low, high]
    width = (high - low) / bins
    counts = [0] * bins
    for value in finite:
        counts[min(bins - 1, int((value - low) / width))] += 1
    return counts, [low + i * width for i in range(bins)] + [high]
