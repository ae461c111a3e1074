"""Values that arrive as rendered templates: a dict, or its JSON text."""

from __future__ import annotations

import json
from typing import Any


def as_mapping(value: Any, name: str) -> dict[str, Any]:
    """Accept a dict or its JSON text (a rendered template); raise ``ValueError`` otherwise."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name} must be a JSON object, got {value!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    return value
