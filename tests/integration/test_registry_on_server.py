"""Train, promote and roll back against a real ``mlflow server`` (artifacts served over HTTP)."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_mlops.example_data import SPEC_PATH, churn
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.registry import MlflowPromoteModelOperator, MlflowRollbackModelOperator
from airflow_mlops.operators.training import MlflowTrainModelOperator
from tests.helpers import task_context

CONN = "mlflow_srv"


@pytest.fixture
def server_conn(mlflow_server, monkeypatch) -> MlflowHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}))
    return MlflowHook(mlflow_conn_id=CONN)


def test_promotion_against_a_tracking_server(server_conn, tmp_path) -> None:
    churn.generate_dataset(str(tmp_path), rows=10, months=[], training_rows=3000, rows_per_file=3000)
    name = f"srv_{uuid.uuid4().hex[:6]}"
    common = {"train_uri": str(tmp_path / "training"), "spec_uri": str(SPEC_PATH), "model_name": name, "mlflow_conn_id": CONN}

    weak = MlflowTrainModelOperator(task_id="train", estimator_params={"max_iter": 1, "max_depth": 1}, **common).execute(task_context("train", "a"))
    strong = MlflowTrainModelOperator(task_id="train", estimator_params={"max_iter": 50}, **common).execute(task_context("train", "b"))
    client = server_conn.client
    run = client.get_run(strong["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # stored by the server, not locally

    promote = {"model_name": name, "spec_uri": str(SPEC_PATH), "mlflow_conn_id": CONN}
    first = MlflowPromoteModelOperator(task_id="p", model_ref=weak["version"], **promote).execute(task_context("p", "a"))
    second = MlflowPromoteModelOperator(task_id="p", min_absolute_change=0.02, **promote).execute(task_context("p", "b"))

    assert first["decision"] == "promoted" and second["decision"] == "promoted"
    aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert aliases == {"challenger": strong["version"], "champion": strong["version"], "previous_champion": weak["version"]}
    tags = client.get_model_version(name, strong["version"]).tags
    assert tags["mlops.decision.compared_against"] == weak["version"]
    assert tags["mlops.decision.dag_run"] == "test_dag/b"

    MlflowRollbackModelOperator(task_id="rb", model_name=name, mlflow_conn_id=CONN).execute(task_context("rb"))

    assert str(client.get_model_version_by_alias(name, "champion").version) == weak["version"]
