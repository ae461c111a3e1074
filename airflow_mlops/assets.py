"""Assets the reference DAGs produce and consume, named by model so other teams' DAGs can share them."""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(model_name: str) -> Asset:
    """The Asset that gets an event when drift is detected in the data scored by ``model_name``."""
    return Asset(name=f"mlops_{model_name}_drift", uri=f"mlops://{model_name}/drift", group="mlops")


def promoted_asset(model_name: str) -> Asset:
    """The Asset that gets an event when a new champion of ``model_name`` is promoted."""
    return Asset(name=f"mlops_{model_name}_champion", uri=f"mlops://{model_name}/champion", group="mlops")


def predictions_asset(model_name: str) -> Asset:
    """The Asset that gets an event when a month of predictions of ``model_name`` is published."""
    return Asset(name=f"mlops_{model_name}_predictions", uri=f"mlops://{model_name}/predictions", group="mlops")
