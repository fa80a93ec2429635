"""JSON as the API sends it: NaN and infinities become null (JSON has neither), anything
else not JSON-able becomes its text."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response


def finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (containers copied)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class JSONOut(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:  # most content has no NaN: encoded as it is, without copying it first
            return json.dumps(content, default=str, separators=(",", ":"),
                              allow_nan=False).encode()
        except (ValueError, TypeError):  # a NaN or infinity (or a key JSON refuses)
            return json.dumps(finite(content), default=str, separators=(",", ":"),
                              allow_nan=False).encode()


def error(status: int, message: str, **extra: Any) -> JSONOut:
    return JSONOut({"error": message, **extra}, status_code=status)
