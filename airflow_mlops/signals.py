"""Retraining signals (drift, decay) kept until a retraining decision covers them.

An Asset event schedules ``mlops_retraining``, but Airflow does not promise that every event reaches
a run: while the DAG is at ``max_active_runs`` the scheduler defers, and events that arrive then can
be consumed by no run (seen on a real scheduler: 4 drift events, 2 runs, 2 events covered by none).
So every signal is also written to a ledger in the reports store (:mod:`airflow_mlops.reports`)::

    signals/<model>/pending/<period>-<kind>.json      one per signal; a re-check of the period replaces it
    signals/<model>/covered/<run>.json                 the signals one run's decision covered

A retraining run lists the pending signals when it starts and, once it has decided (promoted or
rejected a challenger), moves them to ``covered/`` together with the decision. A run that fails
before deciding covers nothing: its signals stay pending for the next run, which covers them all
(coalesced, and saying so).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from airflow_mlops import reports, settings, tables

log = logging.getLogger(__name__)

PENDING = "pending"
COVERED = "covered"


def _folder(model_name: str) -> str:
    return reports.model_folder(reports.SIGNALS, model_name)


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def record(model_name: str, kind: str, period: str, facts: dict[str, Any], *, source: str = "") -> str:
    """Write a pending ``kind`` signal (``drift``, ``decay``) for ``period``; return its URI.

    :param facts: what the check found (share, metric value...), kept with the signal.
    :param source: the DAG run that raised it.
    """
    signal = {"kind": kind, "period": period, "model_name": model_name, "source": source,
              "raised_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **facts}  # fmt: skip
    uri = f"{_folder(model_name)}/{PENDING}/{_safe(period)}-{_safe(kind)}.json"
    return tables.write_text(json.dumps(signal, indent=2, default=str), uri, conn_id=settings.data_conn_id())


def pending(model_name: str) -> list[dict[str, Any]]:
    """Every signal not yet covered by a decision, oldest period first; each with its ``uri``."""
    folder = tables.storage_path(f"{_folder(model_name)}/{PENDING}", conn_id=settings.data_conn_id())
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir(), key=lambda c: c.name):
        if not child.name.endswith(".json"):
            continue
        uri = f"{_folder(model_name)}/{PENDING}/{child.name}"
        try:
            found.append(json.loads(tables.read_text(uri, conn_id=settings.data_conn_id())) | {"uri": uri})
        except ValueError:  # half a file cannot happen (writes are atomic); a foreign file is not ours to judge
            log.warning("Ignoring %s: not a signal", uri)
    return found


def cover(model_name: str, signals: list[dict[str, Any]], run_id: str, decision: dict[str, Any]) -> str:
    """Record that ``run_id``'s ``decision`` covers ``signals`` and remove them from the pending ones.

    The record is written first, so a crash in between leaves a signal both covered and pending (the
    next run covers it again), never neither. Returns the record's URI.
    """
    conn_id = settings.data_conn_id()
    record_uri = f"{_folder(model_name)}/{COVERED}/{_safe(run_id)}.json"
    body = {"run_id": run_id, "decision": decision, "signals": [{k: v for k, v in s.items() if k != "uri"} for s in signals]}
    tables.write_text(json.dumps(body, indent=2, default=str), record_uri, conn_id=conn_id)
    for signal in signals:
        path = tables.storage_path(signal["uri"], conn_id=conn_id)
        if path.exists():
            path.unlink()
    return record_uri


def covered(model_name: str) -> list[dict[str, Any]]:
    """Every covered record: which run's decision covered which signals."""
    folder = tables.storage_path(f"{_folder(model_name)}/{COVERED}", conn_id=settings.data_conn_id())
    if not folder.is_dir():
        return []
    return [
        json.loads(tables.read_text(f"{_folder(model_name)}/{COVERED}/{c.name}", conn_id=settings.data_conn_id()))
        for c in sorted(folder.iterdir(), key=lambda c: c.name)
        if c.name.endswith(".json")
    ]
