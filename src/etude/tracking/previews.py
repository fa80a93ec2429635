"""Previews of stored artifacts: small JSON values (under PREVIEW_MAX_BYTES encoded) that
listings and the UI show without loading the content. numpy is imported only to preview one of
its arrays.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import reprlib
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger("etude.tracking")

PREVIEW_MAX_BYTES = 2048
_TEXT_HEAD_MAX_FILE = 1 << 20
_CELL_CHARS = 60
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 200


def class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def short_repr(obj: Any) -> str | None:
    try:
        return _repr.repr(obj)[:300]
    except Exception as exc:  # a user's __repr__ may fail; the preview then goes without it
        logger.debug("no repr for the preview of a %s: %r", class_name(obj), exc)
        return None


def _json_size(value: Any) -> int:
    return len(json.dumps(value))


def clip(text: str, budget: int) -> str:
    """The longest prefix of `text` that JSON-encodes within about `budget` characters."""
    end = min(len(text), budget)
    while end and (size := _json_size(text[:end])) > budget:
        end = min(end - 1, end * budget // size)
    return text[:end]


def text_head(path: Path, size: int) -> list[str] | None:
    """The first 5 lines of a small UTF-8 text file (each cut at 200 characters), else None."""
    if size > _TEXT_HEAD_MAX_FILE:
        return None
    with open(path, "rb") as src:
        data = src.read(4096)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=size <= len(data))
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    return [line[:200] for line in text.splitlines()[:5]]


def bounded(label: str, preview: dict[str, Any]) -> dict[str, Any]:
    """`preview`, its longest lists shortened until it JSON-encodes under PREVIEW_MAX_BYTES."""
    for keys in (("head", "index"), ("paths",), ("columns", "dtypes")):
        lists = [preview[key] for key in keys if isinstance(preview.get(key), list)]
        while any(lists) and _json_size(preview) >= PREVIEW_MAX_BYTES:
            for items in lists:
                if items:
                    items.pop()
            preview["truncated"] = True
    if _json_size(preview) < PREVIEW_MAX_BYTES:
        return preview
    logger.debug("%s: preview over %d bytes, left out", label, PREVIEW_MAX_BYTES)
    return {"truncated": True}


def _cell(value: Any) -> Any:
    """`value` as a small JSON value: NaN/NaT/NA -> None, dates -> ISO strings, others -> str."""
    if type(value).__module__ == "numpy":
        if getattr(getattr(value, "dtype", None), "kind", "") in ("m", "M"):
            return None if str(value) == "NaT" else str(value)
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:_CELL_CHARS]
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)[:_CELL_CHARS]


def frame_preview(frame: Any, rows: int) -> dict[str, Any]:
    head = frame.iloc[:rows, :50]
    return {
        "shape": list(frame.shape),
        "columns": [_cell(column) for column in frame.columns[:50]],
        "dtypes": [str(dtype) for dtype in frame.dtypes.iloc[:50]],
        "index": [_cell(label) for label in head.index],
        "head": [[_cell(v) for v in row] for row in head.to_numpy(dtype=object).tolist()],
    }


def array_preview(array: Any) -> dict[str, Any]:
    import numpy as np  # lazy, see serialization.Encoder.encode()

    preview: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    numeric = array.dtype == np.bool_ or (
        np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)
    )
    if numeric and array.size:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN arrays
            preview["min"] = _cell(np.nanmin(array))
            preview["max"] = _cell(np.nanmax(array))
            preview["mean"] = _cell(np.nanmean(array, dtype=np.float64))
    return preview
