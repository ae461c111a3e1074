"""Assets the reference DAGs produce and consume, named by model so other teams' DAGs can share them.

They carry a name and no URI on purpose: an Asset URI with a scheme makes Airflow look for a URI
normalizer, which loads every provider's asset handlers (the amazon one pulls in boto3): +0.9 s on
each parse of every DAG file that declares one (bench/RESULTS.md, "Parse time").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def signal_retraining(
    summary: dict[str, Any], outlet_events: Any, asset: Asset, keys: Sequence[str], verdict: str, *, model_name: str, kind: str
) -> dict[str, Any]:
    """Emit ``asset``'s event, carrying ``keys`` of a check's summary, when the check says to retrain
    (``trigger_retraining``), and write the signal to the ledger (:mod:`airflow_mlops.signals`), so a
    retraining decision covers it even if Airflow delivers the event to no run; otherwise skip the
    calling task. The body of a reference DAG's signal task.

    :param verdict: the summary's verdict key named in the skip message (``drift_detected``, ``decayed``).
    :param kind: the signal's kind in the ledger (``drift``, ``decay``).
    :return: the summary.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops import signals

    if not summary["trigger_retraining"]:
        raise AirflowSkipException(f"no retraining trigger for {summary['period']} ({verdict}: {summary[verdict]})")
    facts = {k: summary[k] for k in keys}
    ti = get_current_context()["ti"]
    signals.record(model_name, kind, summary["period"], facts, source=f"{ti.dag_id}/{ti.run_id}")
    outlet_events[asset].extra = facts
    return summary
