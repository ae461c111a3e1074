"""mlops_batch_prediction end to end: three consecutive months with their logical dates."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from airflow_mlops import settings
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.e2e.conftest import error_lines, task_states, xcom

pytestmark = pytest.mark.e2e

MONTHS = {"2025-01": dt.datetime(2025, 2, 1, tzinfo=dt.UTC), "2025-02": dt.datetime(2025, 3, 1, tzinfo=dt.UTC), "2025-03": dt.datetime(2025, 4, 1, tzinfo=dt.UTC)}


@pytest.fixture(scope="module")
def champion(demo_data, dagbag) -> str:
    """Make sure churn has a champion (train one through the retraining DAG if needed)."""
    hook = MlflowHook()
    if hook.registry.alias_version("churn", "champion") is None:
        run = dagbag.get_dag("mlops_retraining").test(run_conf={"window_months": 0, "hyperparameters": {"max_iter": 40}})
        assert str(run.state) == "success"
    return str(hook.registry.alias_version("churn", "champion"))


def predictions_dir(month: str) -> Path:
    return Path(settings.data_root().removeprefix("file://")) / "churn" / "predictions" / f"month={month}"


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.name != "_SUCCESS"}


def queued_retraining() -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(AssetDagRunQueue).filter_by(target_dag_id="mlops_retraining").count()


def unpause_retraining() -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter_by(dag_id="mlops_retraining").update({"is_paused": False})


def test_three_months_drift_only_in_the_drifted_one_and_it_queues_retraining(run_dag, champion, demo_data, capfd) -> None:
    unpause_retraining()  # the scheduler queues asset-triggered runs only for unpaused DAGs
    queued_before = queued_retraining()
    capfd.readouterr()
    runs = {month: run_dag("mlops_batch_prediction", logical_date=when) for month, when in MONTHS.items()}
    logged = capfd.readouterr()
    assert error_lines(logged.out + logged.err) == []  # green runs log no error line
    assert "Scored 2000 rows" in logged.out + logged.err  # the task logs were captured

    for month, run in runs.items():
        states = task_states(run)
        assert str(run.state) == "success", (month, states)
        assert states["predict[0]"] == "success" and states["predict[1]"] == "success"  # one mapped task per file
        drift = xcom(run, "drift_check")
        assert drift["period"] == month
        assert drift["drift_detected"] is (month == "2025-03"), drift
        assert states["signal_drift"] == ("success" if month == "2025-03" else "skipped")
        published = xcom(run, "publish")
        assert published["rows"] == 4000 and published["model_versions"] == [champion]
        assert (predictions_dir(month) / "_SUCCESS").exists()
        assert [re.sub(r"\.[0-9a-f]{12}\.", ".", name) for name in sorted(files(predictions_dir(month)))] == ["part-00000.parquet", "part-00001.parquet"]
    assert {"monthly_charges", "support_calls"} <= set(xcom(runs["2025-03"], "drift_check")["drifted_columns"])
    assert queued_retraining() == queued_before + 1


# The rerun of a month (byte-identical predictions, reports rewritten in place): tests/reliability/test_idempotency.py.


def test_month_override_and_shadow_scoring_from_the_form(run_dag, champion, demo_data) -> None:
    import pandas as pd

    from airflow_mlops.example_data import SPEC_PATH
    from airflow_mlops.operators.training import MlflowTrainModelOperator
    from tests.helpers import task_context

    challenger = MlflowTrainModelOperator(
        task_id="train", train_uri=demo_data["training"], spec_uri=str(SPEC_PATH), model_name="churn", estimator_params={"max_iter": 7}
    ).execute(task_context("train", "shadow-test"))["version"]
    assert challenger != champion

    run = run_dag(
        "mlops_batch_prediction", logical_date=dt.datetime(2025, 9, 1, tzinfo=dt.UTC), run_conf={"month": "2025-01", "shadow_scoring": True}
    )

    assert str(run.state) == "success", task_states(run)
    from airflow_mlops import tables

    frame = tables.read_table(str(predictions_dir("2025-01")))
    assert (frame["model_version"] == champion).all() and (frame["shadow_model_version"] == challenger).all()
    assert frame["shadow_probability"].between(0, 1).all()
    assert (frame["scored_at"] == pd.Timestamp("2025-02-01", tz="UTC")).all()  # when January closed, whenever it is scored
