"""Retraining signals (drift, decay): Airflow's own asset events, and one watermark per model in MLflow.

A check that says "retrain" emits an event on the model's drift or decay Asset
(:func:`airflow_mlops.assets.drift_asset`, :func:`~airflow_mlops.assets.decay_asset`); the event's
``extra`` is the signal (``kind``, ``period``, ``model_version`` and what the check found). Airflow
keeps every event. A retraining run reads the Assets' event history (``inlet_events``) and answers
every event newer than the model's watermark, the registered-model tag ``mlops.signals.answered_through``
(the id of the newest answered event), which it moves forward once its decision is recorded.

Why history and not only the events that triggered the run: Airflow does not promise that every event
reaches a run. While the retraining DAG is at ``max_active_runs`` the scheduler may consume events for
no run (apache/airflow#56050: asset events dropped while a DAG is at max_active_runs; seen on a real
scheduler: 4 drift events, 2 runs, 2 events covered by none). Reading the history since the watermark
answers those too, with no store beside Airflow's; and a run that sees events newer than the ones it
answered queues the next run itself (:class:`~airflow_mlops.operators.signals.RetrainOnNewSignalsOperator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: Registered-model tag: the id of the newest asset event a retraining decision has answered.
WATERMARK_TAG = "mlops.signals.answered_through"
#: Model-version tag: the signals a decision about this version answered (``decay 2025-02, drift 2025-03``).
ANSWERED_TAG = "mlops.signals"
KINDS = ("drift", "decay")


def from_event(event: Any) -> dict[str, Any]:
    """One asset event (an ``inlet_events`` item) as a signal: its ``extra`` plus ``event_id``,
    ``raised_at`` and ``source`` (the DAG run that raised it)."""
    source = f"{event.source_dag_id}/{event.source_run_id}" if getattr(event, "source_dag_id", None) else ""
    extra = dict(event.extra or {})
    return extra | {"event_id": int(event.id), "raised_at": event.timestamp.isoformat(timespec="seconds"), "source": source}


def history(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Signals of these events (those that carry a ``kind`` and a ``period``), oldest first."""
    found = [from_event(e) for e in events]
    return sorted((s for s in found if s.get("kind") and s.get("period")), key=lambda s: s["event_id"])


def split(signals: Sequence[dict[str, Any]], watermark: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(answered, pending)``: the signals at or below the watermark, and those above it."""
    return [s for s in signals if s["event_id"] <= watermark], [s for s in signals if s["event_id"] > watermark]


def key(signal: dict[str, Any]) -> str:
    """``"<kind> <period>"``, how a signal is named in logs, tags and decisions."""
    return f"{signal['kind']} {signal['period']}"


def distinct(signals: Iterable[dict[str, Any]]) -> list[str]:
    """The signals' names, each once, in order of the periods."""
    return sorted({key(s) for s in signals}, key=lambda k: (k.split(" ", 1)[1], k))


def parse_watermark(value: str | None) -> int:
    """The watermark tag's event id; 0 when the model has none yet (or a hand edit made it unreadable)."""
    try:
        return int(str(value).strip()) if value else 0
    except ValueError:
        return 0
