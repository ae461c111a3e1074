"""Airflow's local settings for ``make airflow`` only: ``scripts/airflow_local.py`` puts this folder on
``PYTHONPATH`` of the processes it starts, and nothing else loads it.

A local stack holds the demo's months of data (2025-01..03), not today's. The reference DAGs wait
days for a month's partition or labels, as a deployment should; here the run that unpausing a DAG
creates asks for the month before today, which never comes. So every sensor waits at most
``LOCAL_MAX_WAIT`` seconds (default 600) and then skips the rest of its run instead of holding a
slot or a triggerer seat for days (``soft_fail``: the run ends without the month, and says so in the
sensor's log). ``local_hostname`` is the worker address the API server fetches a running task's log
from: the log servers listen on ``BIND_HOST`` only (loopback by default), not on the machine's name.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["task_policy"]  # Airflow copies every other public name of this module into airflow.settings

#: Seconds a sensor waits in the local stack when ``LOCAL_MAX_WAIT`` is not set.
DEFAULT_MAX_WAIT = 600


def max_wait() -> float:
    """``LOCAL_MAX_WAIT`` in seconds (a positive number), else :data:`DEFAULT_MAX_WAIT`."""
    try:
        value = float(os.environ.get("LOCAL_MAX_WAIT") or DEFAULT_MAX_WAIT)
    except ValueError:
        return DEFAULT_MAX_WAIT
    return value if value > 0 else DEFAULT_MAX_WAIT


def task_policy(task: Any) -> None:
    """Cap every sensor's wait at :func:`max_wait`; a sensor that times out skips instead of failing."""
    from airflow.sdk import BaseSensorOperator

    limit = max_wait()
    if isinstance(task, BaseSensorOperator) and float(task.timeout) > limit:
        task.timeout = limit
        task.soft_fail = True


def local_hostname() -> str:
    """The address this host's log servers answer on (``[core] hostname_callable``)."""
    host = os.environ.get("BIND_HOST", "127.0.0.1").strip()
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
