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


def crown(model_name: str, spec_uri: str, run_id: str = "crown", **kwargs: Any) -> dict[str, Any]:
    """Make the model's challenger its champion the one way the provider allows: a promotion (on a
    registry without a champion and with no minimum value, the challenger wins by default)."""
    from airflow_mlops.operators.registry import MlflowPromoteModelOperator

    decision = MlflowPromoteModelOperator(task_id="promote", model_name=model_name, spec_uri=spec_uri, min_value=None, **kwargs).execute(
        task_context("promote", run_id)
    )
    assert decision["decision"] == "promoted", decision
    return decision


def spec_with_tolerance(spec_uri: str, folder: Any, **shares: float) -> str:
    """A copy of the spec at ``spec_uri`` in ``folder`` with the given columns' ``tolerance`` set; its path."""
    import yaml

    from airflow_mlops.spec import FeatureSpec

    doc = FeatureSpec.load(str(spec_uri)).to_dict()
    for column, share in shares.items():
        kind = "numeric_features" if column in doc["numeric_features"] else "categorical_features"
        doc[kind][column]["tolerance"] = share
    path = folder / f"tolerant_{'_'.join(f'{c}{s}' for c, s in shares.items())}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)
