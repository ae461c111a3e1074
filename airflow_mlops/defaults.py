"""Task defaults the reference DAGs use, for teams that want the same behaviour in their own DAGs."""

from __future__ import annotations

import datetime as dt
from typing import Any


def task_defaults(owner: str = "mlops") -> dict[str, Any]:
    """``default_args`` for tasks that talk to MLflow or object storage: two retries with exponential
    backoff from 30 s up to 10 min: a restarting tracking server or a throttled bucket heals. Bad
    configuration (unknown estimator, invalid thresholds) fails at once, since the operators raise
    ``AirflowFailException`` for it; give validation tasks ``retries=0`` too, as bad data does not heal."""
    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
    }
