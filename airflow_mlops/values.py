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


def optional_text(value: Any) -> Any:
    """``None`` for an unset value as a template renders it (``None``, ``""`` or the text ``"None"``), else the value."""
    return None if value in (None, "", "None") else value


def optional_float(value: Any, name: str) -> float | None:
    """A number, or ``None`` when unset (see :func:`optional_text`); raise ``ValueError`` naming ``name`` otherwise."""
    if optional_text(value) is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc


def as_uri_list(value: Any, name: str) -> list[str]:
    """One URI, a list of them, or the JSON text of a list (a rendered template) as a list; ``ValueError`` when empty."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name} must be a URI or a JSON list of URIs, got {value!r}") from exc
    uris = [value] if isinstance(value, str) else list(value or [])
    if not uris or not all(isinstance(u, str) and u for u in uris):
        raise ValueError(f"{name} must be a URI or a non-empty list of URIs, got {value!r}")
    return uris
