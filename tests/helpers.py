"""Small helpers shared by tests that call operators directly."""

from __future__ import annotations

from typing import Any
from unittest import mock


def task_context(task_id: str = "task", run_id: str = "manual__test", dag_id: str = "test_dag", try_number: int = 1) -> dict[str, Any]:
    """A minimal execute() context: a TaskInstance stand-in that records XCom pushes."""
    pushed: dict[str, Any] = {}
    ti = mock.MagicMock(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=-1, try_number=try_number)
    ti.xcom_push.side_effect = lambda key, value: pushed.__setitem__(key, value)
    outlet_events: dict[Any, Any] = {}

    class Events(dict):
        def __missing__(self, key: Any) -> Any:
            self[key] = mock.MagicMock(extra={})
            return self[key]

    outlet_events = Events()
    return {"ti": ti, "logical_date": None, "pushed": pushed, "outlet_events": outlet_events}
