"""Assets the reference DAGs produce and consume, named by model so other teams' DAGs can share them.

They carry a name and no URI on purpose: an Asset URI with a scheme makes Airflow look for a URI
normalizer, which loads every provider's asset handlers (the amazon one pulls in boto3): +0.9 s on
each parse of every DAG file that declares one (bench/RESULTS.md, "Parse time").
"""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(model_name: str) -> Asset:
    """The Asset that gets an event when drift is detected in the data scored by ``model_name``."""
    return Asset(name=f"mlops_{model_name}_drift", group="mlops")


def promoted_asset(model_name: str) -> Asset:
    """The Asset that gets an event when a new champion of ``model_name`` is promoted."""
    return Asset(name=f"mlops_{model_name}_champion", group="mlops")


def predictions_asset(model_name: str) -> Asset:
    """The Asset that gets an event when a month of predictions of ``model_name`` is published."""
    return Asset(name=f"mlops_{model_name}_predictions", group="mlops")


def decay_asset(model_name: str) -> Asset:
    """The Asset that gets an event when the labelled quality of ``model_name`` is confirmed to have decayed."""
    return Asset(name=f"mlops_{model_name}_decay", group="mlops")
