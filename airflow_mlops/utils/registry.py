"""MLflow model-registry glue: resolve versions and aliases, record decisions as version tags."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import ModelResolutionError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
CHALLENGER = "challenger"


def quote_filter(value: str) -> str:
    """Quote a value for an MLflow search filter string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_not_found(exc: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def resolve_version(client: MlflowClient, name: str, ref: str | int) -> ModelVersion:
    """Resolve ``ref`` (an alias like ``champion`` or a version number) to a READY model version.

    :raises ModelResolutionError: the model, alias or version does not exist or is not READY.
    """
    from mlflow.exceptions import MlflowException

    text = str(ref).strip()
    try:
        version = client.get_model_version(name, text) if text.isdigit() else client.get_model_version_by_alias(name, text)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        what = f"version {text}" if text.isdigit() else f"alias {text!r}"
        raise ModelResolutionError(f"{what} does not exist ({exc.message})", model_name=name) from exc
    if version.status != "READY":
        raise ModelResolutionError(f"version {version.version} is {version.status}, not READY", model_name=name)
    return version


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Return the version ``alias`` points at, or ``None`` when the alias (or model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def record_decision(client: MlflowClient, name: str, version: str, decision: dict[str, Any]) -> None:
    """Write a decision onto the model version as ``mlops.decision.*`` tags (the audit trail).

    Each key of ``decision`` becomes a tag; a timestamp is added. Read back with
    ``client.get_model_version(name, version).tags``.
    """
    stamped = decision | {"decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    for key, value in stamped.items():
        client.set_model_version_tag(name, version, f"mlops.decision.{key}", "" if value is None else str(value))
