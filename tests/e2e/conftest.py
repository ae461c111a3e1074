"""End-to-end fixtures: a migrated Airflow DB, the demo data, and a helper that runs a DAG with dag.test()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_mlops import settings


@pytest.fixture(scope="session")
def demo_data(airflow_db) -> dict[str, Any]:
    """Churn demo data under the session's data root: training + three months, drift from the third."""
    from airflow_mlops.example_data import churn

    return churn.generate_dataset(
        f"{settings.data_root()}/churn", rows=4000, months=["2025-01", "2025-02", "2025-03"],
        training_rows=8000, drift_from="2025-03", concept_drift_from="2025-02", rows_per_file=2000,
    )  # fmt: skip


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    assert bag.import_errors == {}
    return bag


@pytest.fixture
def run_dag(dagbag) -> Callable[..., Any]:
    """Run a DAG by id with dag.test(); return the DagRun.

    dag.test() runs the tasks in this process, where a run's conf is merged into the shared DAG's
    params and stays there for the next run; the params are put back after each run, so every test
    sees the DAG as parsed, whatever ran before it.
    """
    import copy

    def run(dag_id: str, **kwargs: Any) -> Any:
        dag = dagbag.get_dag(dag_id)
        assert dag is not None, f"{dag_id} not in {list(dagbag.dags)}"
        parsed = {id(owner): (owner, copy.deepcopy(owner.params)) for owner in (dag, *dag.tasks)}
        try:
            return dag.test(**kwargs)
        finally:
            for owner, params in parsed.values():
                owner.params = params

    return run


def task_states(dag_run: Any) -> dict[str, str]:
    """Map task_id (with map index when mapped) to its final state."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
        for ti in dag_run.get_task_instances()
    }


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key).first()
        return XComModel.deserialize_value(row) if row else None


def error_lines(captured: str) -> list[str]:
    """The ``[error]`` log lines in a run's captured output (a green run must have none)."""
    return [line for line in captured.splitlines() if "[error" in line]


def raised_signals(model_name: str) -> list[dict[str, Any]]:
    """Every retraining signal of ``model_name`` in Airflow's asset-event history (read from the test's
    metadata DB, as the retraining block reads it through ``inlet_events``), oldest first, each with
    ``event_id``; and whether a decision answered it (``answered``: at or below the model's watermark)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from airflow_mlops import signals
    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.operators.signals import signal_assets

    names = [a.name for a in signal_assets(model_name)]
    watermark = signals.parse_watermark(MlflowHook().registry.model_tag(model_name, signals.WATERMARK_TAG))
    with create_session() as session:
        rows = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(AssetModel.name.in_(names)).all()
        found = [dict(row.extra or {}) | {"event_id": row.id} for row in rows]
    return [s | {"answered": s["event_id"] <= watermark} for s in sorted(found, key=lambda s: s["event_id"])]


def pending_signals(model_name: str) -> set[tuple[str, str]]:
    """``(kind, period)`` of the signals no decision has answered yet."""
    return {(s["kind"], s["period"]) for s in raised_signals(model_name) if not s["answered"]}
